/* The layout oracle: the host compiler's own offsetof/sizeof for the fixture table. */
#include "oracle.h"
#include "layout_fixtures.h"

int main(void)
{
    LAYOUT_TABLE(ORACLE_T, ORACLE_M, ORACLE_I, ORACLE_B)
    return 0;
}
