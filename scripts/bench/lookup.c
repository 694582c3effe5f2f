/*
 * The C side of the decision benchmark: the header `pvgate emit --lang c`
 * writes (PVGATE_HEADER, a `switch` per (kind, phase, access)), compiled
 * with cc -O2, and the same 2-bit floor as conformance/examples/lookup_cost.rs,
 * run over the same 16 probes through the same shape of measured loop
 * (one indirect call per decision). scripts/bench.sh counts instructions
 * with callgrind at R and 2R rounds.
 *
 * usage: lookup VARIANT ROUNDS   (VARIANT: c_switch | c_bitmap)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include PVGATE_HEADER

static const uint32_t probes[16] = {
	0x10, 0x174, 0x176, 0x1a0, 0x200, 0x201, 0x203, 0x2ff,
	0xc0000081, 0xc0000084, 0xc0000102, 0x10b, 0x49, 0x6e0, 0x277, 0xdeadbeef,
};

static uint64_t low[256], high[256];

static unsigned c_switch(uint32_t i)
{
	return pvgate_decide_msr(PVGATE_VM_PROTECTED, PVGATE_PHASE_SETUP, PVGATE_ACCESS_WRITE, i);
}

static unsigned c_bitmap(uint32_t i)
{
	const uint64_t *w;
	uint32_t off;

	if (i < 0x2000) {
		w = low;
		off = i;
	} else if (i - 0xc0000000u < 0x2000) {
		w = high;
		off = i - 0xc0000000u;
	} else {
		return PVGATE_DENY;
	}
	return (w[off / 32] >> (2 * (off % 32))) & 3;
}

__attribute__((noinline)) static uint64_t run(uint32_t rounds, unsigned (*volatile decide)(uint32_t))
{
	uint64_t total = 0;

	for (uint32_t r = 0; r < rounds; r++)
		for (int k = 0; k < 16; k++)
			total += decide(probes[k]);
	return total;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: lookup c_switch|c_bitmap ROUNDS\n");
		return 2;
	}
	for (uint32_t off = 0; off < 0x2000; off++) {
		low[off / 32] |= (uint64_t)c_switch(off) << (2 * (off % 32));
		high[off / 32] |= (uint64_t)c_switch(0xc0000000u + off) << (2 * (off % 32));
	}
	for (uint32_t off = 0; off < 0x2000; off++)
		if (c_bitmap(off) != c_switch(off) || c_bitmap(0xc0000000u + off) != c_switch(0xc0000000u + off))
			return 3;
	for (int k = 0; k < 16; k++)
		if (c_bitmap(probes[k]) != c_switch(probes[k]))
			return 3;
	uint32_t rounds = (uint32_t)strtoul(argv[2], NULL, 10);
	uint64_t total = run(rounds, strcmp(argv[1], "c_switch") == 0 ? c_switch : c_bitmap);
	printf("%s: %llu\n", argv[1], (unsigned long long)total);
	return 0;
}
