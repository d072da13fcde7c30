#!/usr/bin/env python3
"""Continuous SMTP load through several nodes, with an exact account.

Usage: smtp_account.py OUT_DIR STOP_FILE HOST:PORT=DOMAIN...

CLIENTS threads (env SMTP_LOAD_CLIENTS, default 4) each send one message
per session to postmaster@DOMAIN, round-robin over the servers, until
STOP_FILE exists. Every message carries a unique id in its Subject. What each session saw is
counted by the first reply that was not a success:

  accepted  250 after DATA: the id is written to OUT_DIR/accepted
  tempfail  a 4xx anywhere (421 at connect while a node drains included)
  permfail  a 5xx anywhere (must never happen during a rolling restart)
  dropped   the connection closed or reset without a reply, after the
            greeting (must never happen: that is a session cut mid-way)
  refused   no session: the connection was refused, or reset before any
            greeting (accepted by the kernel just as Postfix stopped); a
            real client tries the next MX or again later

OUT_DIR/summary.json gets the counts at the end, plus the first few
problems of each kind with the server and step, for the test's message.
"""
import json
import os
import smtplib
import socket
import sys
import threading
import time

KINDS = ("accepted", "tempfail", "permfail", "dropped", "refused")


class Account:
    def __init__(self, out_dir):
        self.lock = threading.Lock()
        self.counts = {k: 0 for k in KINDS}
        self.examples = {k: [] for k in KINDS}
        self.accepted = open(os.path.join(out_dir, "accepted"), "w")
        self.out_dir = out_dir

    def note(self, kind, server, detail="", msgid=None):
        with self.lock:
            self.counts[kind] += 1
            if kind != "accepted" and len(self.examples[kind]) < 5:
                self.examples[kind].append(f"{server}: {detail}")
            if msgid:
                self.accepted.write(msgid + "\n")
                self.accepted.flush()

    def close(self):
        self.accepted.close()
        with open(os.path.join(self.out_dir, "summary.json"), "w") as f:
            json.dump({"counts": self.counts, "examples": self.examples}, f,
                      indent=2)


def one_session(server, msgid, account):
    host, port = server.rsplit(":", 1)
    try:
        s = smtplib.SMTP(timeout=30)
        code, msg = s.connect(host, int(port))
    except ConnectionRefusedError:
        account.note("refused", server, "connect")
        time.sleep(0.05)
        return
    except smtplib.SMTPConnectError as e:  # greeting not 220
        kind = "tempfail" if 400 <= e.smtp_code < 500 else "permfail"
        account.note(kind, server, f"connect: {e.smtp_code} {e.smtp_error!r}")
        return
    except (smtplib.SMTPServerDisconnected, OSError) as e:
        account.note("refused", server, f"no greeting: {e!r}")
        return
    if code != 220:
        kind = "tempfail" if 400 <= code < 500 else "permfail"
        account.note(kind, server, f"greeting: {code} {msg!r}")
        return
    step = "ehlo"
    try:
        code, msg = s.ehlo("load.example")
        if code != 250:
            raise smtplib.SMTPResponseException(code, msg)
        step = "mail"
        body = (f"From: load@load.example\r\nTo: postmaster\r\n"
                f"Subject: {msgid}\r\n\r\nload test message {msgid}\r\n")
        step = "send"
        s.sendmail("load@load.example", ["postmaster@" + host_domain(server)],
                   body)
        account.note("accepted", server, msgid=msgid)
        try:
            s.quit()
        except Exception:
            pass
    except smtplib.SMTPRecipientsRefused as e:
        code, msg = list(e.recipients.values())[0]
        kind = "tempfail" if 400 <= code < 500 else "permfail"
        account.note(kind, server, f"rcpt: {code} {msg!r}")
    except smtplib.SMTPResponseException as e:
        kind = "tempfail" if 400 <= e.smtp_code < 500 else "permfail"
        account.note(kind, server, f"{step}: {e.smtp_code} {e.smtp_error!r}")
    except (smtplib.SMTPServerDisconnected, OSError) as e:
        account.note("dropped", server, f"{step}: {e!r}")
    finally:
        try:
            s.close()
        except Exception:
            pass


DOMAINS = {}


def host_domain(server):
    return DOMAINS[server]


def client(n, servers, stop_file, account):
    i = 0
    while not os.path.exists(stop_file):
        server = servers[(n + i) % len(servers)]
        one_session(server, f"load-{n}-{i}", account)
        i += 1


def main():
    out_dir, stop_file = sys.argv[1], sys.argv[2]
    servers = []
    for arg in sys.argv[3:]:  # HOST:PORT=DOMAIN
        server, domain = arg.split("=", 1)
        servers.append(server)
        DOMAINS[server] = domain
    account = Account(out_dir)
    clients = int(os.environ.get("SMTP_LOAD_CLIENTS", "4"))
    threads = [threading.Thread(target=client,
                                args=(n, servers, stop_file, account))
               for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    account.close()


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    main()
