#!/usr/bin/env python3
"""smtp_load.py - push pre-generated messages through an SMTP server fast.

usage: smtp_load.py HOST PORT SESSIONS FILE...

SESSIONS threads each hold one SMTP connection and send their share of
FILE... (each file one whole message) one after another on it, as a busy
MTA peer would; smtp-source can only repeat one message per session, and
identical bodies would let a scanner's result cache flatter it. Prints
"sent N failed M seconds S". Only for benchmarks, on 127.0.0.1.
"""
import smtplib
import sys
import threading
import time


def worker(host, port, files, counts, lock):
    sent = failed = 0
    conn = smtplib.SMTP(host, port, timeout=60)
    conn.ehlo("load.bench.test")
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        try:
            conn.sendmail("bench@remote.test", ["someone@remote.test"], data)
            sent += 1
        except smtplib.SMTPException:
            failed += 1
            conn.rset()
    conn.quit()
    with lock:
        counts[0] += sent
        counts[1] += failed


def main():
    host, port, sessions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    files = sys.argv[4:]
    counts, lock = [0, 0], threading.Lock()
    threads = [
        threading.Thread(target=worker,
                         args=(host, port, files[i::sessions], counts, lock))
        for i in range(sessions)
    ]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("sent %d failed %d seconds %.3f" %
          (counts[0], counts[1], time.monotonic() - t0))


if __name__ == "__main__":
    main()
