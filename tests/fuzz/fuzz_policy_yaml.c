/* fuzz_policy_yaml.c - a YAML policy file, as `privmta-ctl policy push`
 * and the controller read it: pm_value_parse then pm_policy_from_value
 * (which validates). An accepted policy must also pass the wire gate and
 * render to YAML that reads back to the same digest (pm_fuzz.c). */
#include "pm_fuzz.h"

int
pm_fuzz_one(const uint8_t *data, size_t size)
{
    pm_fuzz_policy(data, size, PM_FUZZ_YAML);
    return 0;
}
