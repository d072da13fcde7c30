/* test_text.c - pm_text_escape: what an agent sends cannot forge a log
 * line or drive the operator's terminal, and long text is capped. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "pm_text.h"

/* Asserts that escaping IN with cap MAX gives WANT. */
static void
s_expect(const char *in, size_t max, const char *want)
{
    char *got = pm_text_escape(in, max);
    cr_assert_not_null(got);
    cr_expect_str_eq(got, want, "escaping \"%s\" (max %zu)", want, max);
    if (max)
        cr_expect_leq(strlen(got), max);
    free(got);
}

Test(text, plain_text_is_unchanged)
{
    s_expect("mx1.example.com: 4.3.5 try later", 0,
             "mx1.example.com: 4.3.5 try later");
    s_expect("", 0, "");
    s_expect("", 5, "");
    s_expect(NULL, 0, "");
    s_expect("~!@#$%^&*()_+{}|:\"<>?`-=[];',./", 0,
             "~!@#$%^&*()_+{}|:\"<>?`-=[];',./");
}

Test(text, line_breaks_and_tabs_are_named)
{
    s_expect("a\nb", 0, "a\\nb");
    s_expect("a\r\nforged: line", 0, "a\\r\\nforged: line");
    s_expect("\tx\t", 0, "\\tx\\t");
}

Test(text, backslash_is_doubled)
{
    /* else "\n" typed by an agent would read as an escaped newline */
    s_expect("a\\nb", 0, "a\\\\nb");
    s_expect("\\", 0, "\\\\");
}

Test(text, other_c0_controls_and_del_are_hex)
{
    s_expect("\x1b[2J\x1b]0;owned\x07", 0, "\\x1b[2J\\x1b]0;owned\\x07");
    s_expect("\x01\x1f\x7f", 0, "\\x01\\x1f\\x7f");
    s_expect("bell\x08", 0, "bell\\x08");
}

Test(text, c1_controls_are_escaped)
{
    /* U+009B is CSI, U+0085 NEL: both encoded as C2 xx in UTF-8 */
    s_expect("\xc2\x9b"
             "2J",
             0, "\\u009b2J");
    s_expect("a\xc2\x85"
             "b",
             0, "a\\u0085b");
    s_expect("\xc2\x80\xc2\x9f", 0, "\\u0080\\u009f");
    /* U+00A0 and beyond print */
    s_expect("\xc2\xa0", 0, "\xc2\xa0");
}

Test(text, bidi_and_separators_are_escaped)
{
    s_expect("abc\xe2\x80\xae"
             "fed",
             0, "abc\\u202efed");
    s_expect("\xe2\x81\xa6x\xe2\x81\xa9", 0, "\\u2066x\\u2069");
    s_expect("a\xe2\x80\xa8"
             "b\xe2\x80\xa9",
             0, "a\\u2028b\\u2029");
    s_expect("\xe2\x80\x8e\xe2\x80\x8f", 0, "\\u200e\\u200f");
}

Test(text, valid_utf8_is_kept)
{
    s_expect("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa8", 0,
             "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa8");
    s_expect("\xe6\x97\xa5\xe6\x9c\xac", 0, "\xe6\x97\xa5\xe6\x9c\xac");
}

Test(text, malformed_utf8_is_hex_per_byte)
{
    s_expect("\xff", 0, "\\xff");
    s_expect("a\x80z", 0, "a\\x80z");               /* stray continuation */
    s_expect("\xc0\xaf", 0, "\\xc0\\xaf");          /* overlong '/' */
    s_expect("\xe0\x80\xaf", 0, "\\xe0\\x80\\xaf"); /* overlong, 3 bytes */
    s_expect("\xed\xa0\x80", 0, "\\xed\\xa0\\x80"); /* surrogate D800 */
    s_expect("\xf4\x90\x80\x80", 0, "\\xf4\\x90\\x80\\x80"); /* > 10FFFF */
    s_expect("\xe2\x82", 0, "\\xe2\\x82");   /* cut short at the end */
    s_expect("\xe2\x82z", 0, "\\xe2\\x82z"); /* cut short in the middle */
}

Test(text, cap_adds_marker)
{
    s_expect("abcdefghij", 8, "abcde" PM_TEXT_MORE);
    s_expect("abcdefgh", 8, "abcdefgh"); /* fits exactly: no marker */
    s_expect("abcdefghi", 8, "abcde" PM_TEXT_MORE);
    s_expect("abcdefghij", 0, "abcdefghij");
    s_expect("abcdefghij", 3, PM_TEXT_MORE);
    s_expect("abcdefghij", 2, "..");
}

Test(text, cap_counts_escapes_and_never_splits_them)
{
    /* "ab\n\n" escapes to 6 bytes: too long for 5 */
    s_expect("ab\n\n", 5, "ab" PM_TEXT_MORE);
    s_expect("ab\n\n", 6, "ab\\n\\n");
    s_expect("a\x1b"
             "bcdef",
             7, "a" PM_TEXT_MORE);
    s_expect("a\x1b"
             "bcdef",
             8, "a\\x1b" PM_TEXT_MORE);
    /* whole UTF-8 characters only: each is 2 bytes */
    s_expect("\xc3\xa9\xc3\xa9\xc3\xa9", 5, "\xc3\xa9" PM_TEXT_MORE);
    s_expect("\xc3\xa9\xc3\xa9\xc3\xa9", 6, "\xc3\xa9\xc3\xa9\xc3\xa9");
}

Test(text, long_hostile_text_is_bounded)
{
    size_t n = 100000;
    char *big = malloc(n + 1);
    cr_assert_not_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = i % 2 ? '\n' : '\x1b';
    big[n] = '\0';
    char *out = pm_text_escape(big, 256);
    cr_expect_leq(strlen(out), 256);
    cr_expect_null(strchr(out, '\n'));
    cr_expect_null(strchr(out, '\x1b'));
    cr_expect_str_eq(out + strlen(out) - strlen(PM_TEXT_MORE), PM_TEXT_MORE);
    free(out);
    /* uncapped, every byte becomes its escape */
    out = pm_text_escape(big, 0);
    cr_expect_eq(strlen(out), n / 2 * 4 + n / 2 * 2);
    free(out);
    free(big);
}
