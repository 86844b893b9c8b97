/* outrider-collector: entry point (being built; see issue 2). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "outrider-collector: not ready\n");
    return 1;
}
