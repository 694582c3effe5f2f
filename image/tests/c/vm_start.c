/*
 * vm_start.c: a protected VM's start through the C ABI, as pKVM-IA does it
 * (pkvm_vm_finalize, pkvm_vcpu_run, pkvm_start_secondary_vcpu): nothing runs
 * before vm_finalize, the host cannot run a secondary, the guest starts it
 * with start_secondary (hostile arguments refused with pKVM-IA's errors),
 * through the exported functions and through the hypercall numbers alike.
 * Built and run by tests/c_image.rs; prints "ok"/"FAIL" lines, then PASSED.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pvgate.h"

static int failures;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (cond) {                                        \
            printf("ok   ");                               \
        } else {                                           \
            printf("FAIL ");                               \
            failures++;                                    \
        }                                                  \
        printf(__VA_ARGS__);                               \
        printf("\n");                                      \
    } while (0)

static int64_t hc(uint64_t nr, uint64_t rbx, uint64_t rcx, uint64_t rdx) {
    struct pvgate_regs r = { nr, rbx, rcx, rdx, 0, 0, 0 };
    struct pvgate_out o;
    memset(&o, 0xAA, sizeof o);
    return pvgate_hypercall(&r, &o, NULL, 0);
}

int main(void) {
    uint64_t vm = 0, npvm = 0, v[3] = { 0, 0, 0 }, n0 = 0;

    CHECK(pvgate_init(PVGATE_CPU_REFERENCE) == 0, "init");
    CHECK(pvgate_create_vm(PVGATE_VM_PROTECTED, &vm) == 0, "create a protected vm");
    for (int i = 0; i < 3; i++) {
        CHECK(pvgate_create_vcpu(vm, &v[i]) == 0, "create vcpu %d", i);
    }
    CHECK(hc(PVGATE_VCPU_RUN, v[0], 0, 0) == -PVGATE_EPERM, "the boot vcpu does not run before vm_finalize");
    CHECK(pvgate_guest_start_secondary(v[0], 1, 0x9f000) == -PVGATE_EPERM, "no guest call from a vcpu that never ran");
    CHECK(pvgate_vm_finalize(vm, 0xFFFFFFFFFFF00000ull) == -PVGATE_EINVAL, "a pvmfw image past 2^64 -> -EINVAL");
    CHECK(hc(PVGATE_VM_FINALIZE, vm, 0x7FE00000, 0) == 0, "vm_finalize with pvmfw at 0x7fe00000 (hypercall)");
    CHECK(pvgate_vm_finalize(vm, PVGATE_PVMFW_NONE) == -PVGATE_EBUSY, "a second vm_finalize -> -EBUSY");
    CHECK(hc(PVGATE_VCPU_RUN, v[1], 0, 0) == -PVGATE_EPERM, "the host cannot run a secondary");
    CHECK(hc(PVGATE_VCPU_RUN, v[0], 0, 0) == 0, "the boot vcpu runs");

    CHECK(pvgate_guest_start_secondary(v[0], 1, 0x9f123) == -PVGATE_EFAULT, "start address not a page -> -EFAULT");
    CHECK(pvgate_guest_start_secondary(v[0], 1, 0x100000) == -PVGATE_EFAULT, "start address at 1 MiB -> -EFAULT");
    CHECK(pvgate_guest_start_secondary(v[0], 0, 0x9f000) == -PVGATE_EINVAL, "the boot vcpu -> -EINVAL");
    CHECK(pvgate_guest_start_secondary(v[0], 9, 0x9f000) == -PVGATE_EINVAL, "an unknown apic id -> -EINVAL");
    CHECK(pvgate_guest_start_secondary(0x1234, 1, 0x9f000) == -PVGATE_EINVAL, "a garbage caller -> -EINVAL");
    CHECK(pvgate_guest_start_secondary(v[0], 1, 0x9f000) == 0, "the guest starts vcpu 1");
    CHECK(pvgate_guest_start_secondary(v[0], 1, 0x9f000) == -PVGATE_EBUSY, "again -> -EBUSY");
    CHECK(hc(PVGATE_VCPU_RUN, v[1], 0, 0) == 0, "vcpu 1 runs");
    CHECK(hc(PVGATE_HC_GUEST_START_SECONDARY, v[1], 2, 0x8000) == 0, "vcpu 1 starts vcpu 2 (hypercall)");
    CHECK(hc(PVGATE_VCPU_RUN, v[2], 0, 0) == 0, "vcpu 2 runs");

    CHECK(pvgate_create_vm(PVGATE_VM_NORMAL, &npvm) == 0 && pvgate_create_vcpu(npvm, &n0) == 0, "a normal vm");
    CHECK(pvgate_vm_finalize(npvm, PVGATE_PVMFW_NONE) == -PVGATE_EINVAL, "vm_finalize of a normal vm -> -EINVAL");
    CHECK(hc(PVGATE_VCPU_RUN, n0, 0, 0) == 0, "a normal vm's vcpu runs without it");
    CHECK(pvgate_guest_start_secondary(n0, 1, 0x9f000) == -PVGATE_EINVAL, "start_secondary in a normal vm -> -EINVAL");

    CHECK(pvgate_audit_count(PVGATE_VM_FINALIZE, PVGATE_ALLOW) == 1, "one vm_finalize allowed");
    CHECK(pvgate_destroy_vm(vm) == 0 && pvgate_destroy_vm(npvm) == 0, "destroy both vms");
    printf("%s\n", failures ? "FAILED" : "PASSED");
    return failures ? 1 : 0;
}
