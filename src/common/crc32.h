/* CRC-32 (IEEE 802.3), for the integrity of spool records. */
#ifndef MAILSEAL_CRC32_H
#define MAILSEAL_CRC32_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32_update(uint32_t crc, const void *, size_t);

#endif
