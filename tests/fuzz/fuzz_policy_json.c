/* fuzz_policy_json.c - a JSON policy file. JSON is read by the same
 * loader as YAML (as YAML's flow style, pm_value.h), so this target differs
 * from fuzz_policy_yaml by its seeds and dictionary, which keep the
 * mutations in JSON's syntax, and by rendering accepted policies back as
 * JSON (pm_policy_to_json), the form `policy show --json` prints and
 * scripts push again. */
#include "pm_fuzz.h"

int
pm_fuzz_one(const uint8_t *data, size_t size)
{
    pm_fuzz_policy(data, size, PM_FUZZ_JSON);
    return 0;
}
