/* unit.h — includes every unit test needs, in the order cmocka requires. */
#ifndef CDR_UNIT_H
#define CDR_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#endif
