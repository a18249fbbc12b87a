/* keeps the support library non-empty */
int gw_test_support_none(void);
int gw_test_support_none(void) { return 0; }
