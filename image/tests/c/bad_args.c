/*
 * A buggy C caller: every exported function of the pvgate image gets the
 * bad arguments a C program can pass (NULL and misaligned pointers, huge
 * counts, NULL with a zero count, garbage handles, unknown call and model
 * numbers). Each must be refused with the documented errno, create nothing
 * and leak nothing: after hundreds of refused creations every VM and vCPU
 * slot can still be created. Run against a debug and a release build of
 * the staticlib by tests/c_image.rs; prints one line per check and exits 0
 * only if every check held.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pvgate.h"

#define VMS 8   /* the image's VM slots */
#define VCPUS 8 /* vCPU slots per VM */
#define TRIES 100

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

/* Storage for misaligned pointers: one byte past an aligned start. */
static union {
    uint64_t align;
    unsigned char bytes[64 * 1024];
} raw;

static void *misaligned(void) { return raw.bytes + 1; }

static struct pvgate_out hc(uint64_t nr, uint64_t handle, uint64_t a, struct pvgate_cpuid_entry *shared,
                            size_t n) {
    struct pvgate_regs r = { nr, handle, a, 0, 0, 0, 0 };
    struct pvgate_out o;
    memset(&o, 0xAA, sizeof o);
    int64_t ret = pvgate_hypercall(&r, &o, shared, n);
    if (ret != o.status)
        CHECK(0, "hypercall %#llx returned %lld but stored %lld", (unsigned long long)nr, (long long)ret,
              (long long)o.status);
    return o;
}

int main(void) {
    static struct pvgate_cpuid_entry table[256];
    uint64_t vms[VMS];
    uint64_t vcpu = 0, h = 0;
    int i, bad;

    CHECK(pvgate_init(UINT32_MAX) == -PVGATE_EINVAL, "init with an unknown cpu model -> -EINVAL");
    CHECK(pvgate_init(PVGATE_CPU_REFERENCE) == 0, "init with the reference cpu model");

    /* Creation with a handle pointer that cannot be written creates nothing. */
    bad = 0;
    for (i = 0; i < TRIES; i++) {
        bad += pvgate_create_vm(PVGATE_VM_PROTECTED, NULL) != -PVGATE_EFAULT;
        bad += pvgate_create_vm(PVGATE_VM_NORMAL, (uint64_t *)misaligned()) != -PVGATE_EFAULT;
        bad += pvgate_create_vm(7, NULL) != -PVGATE_EFAULT;
    }
    CHECK(bad == 0, "%d create_vm with a NULL or misaligned handle pointer -> -EFAULT (%d wrong)", 3 * TRIES, bad);
    h = 0x5EED;
    CHECK(pvgate_create_vm(7, &h) == -PVGATE_EINVAL && h == 0x5EED, "create_vm of kind 7 -> -EINVAL, handle untouched");
    CHECK(pvgate_create_vm(UINT32_MAX, &h) == -PVGATE_EINVAL, "create_vm of kind 0xffffffff -> -EINVAL");
    for (i = 0; i < VMS; i++)
        vms[i] = 0;
    bad = 0;
    for (i = 0; i < VMS; i++)
        bad += pvgate_create_vm(PVGATE_VM_PROTECTED, &vms[i]) != 0 || vms[i] == 0;
    CHECK(bad == 0, "then all %d vm slots can still be created (no slot leaked)", VMS);
    CHECK(pvgate_create_vm(PVGATE_VM_PROTECTED, &h) == -PVGATE_ENOSPC, "a ninth vm -> -ENOSPC");

    bad = 0;
    for (i = 0; i < TRIES; i++) {
        bad += pvgate_create_vcpu(vms[0], NULL) != -PVGATE_EFAULT;
        bad += pvgate_create_vcpu(vms[0], (uint64_t *)misaligned()) != -PVGATE_EFAULT;
    }
    CHECK(bad == 0, "%d create_vcpu with a NULL or misaligned handle pointer -> -EFAULT (%d wrong)", 2 * TRIES, bad);
    bad = 0;
    for (i = 0; i < VCPUS; i++) {
        uint64_t v = 0;
        bad += pvgate_create_vcpu(vms[0], &v) != 0 || v == 0;
        if (i == 0)
            vcpu = v;
    }
    CHECK(bad == 0, "then all %d vcpu slots of the vm can still be created (no slot leaked)", VCPUS);
    CHECK(pvgate_create_vcpu(vms[0], &h) == -PVGATE_ENOSPC, "a ninth vcpu -> -ENOSPC");

    /* Garbage handles. */
    const uint64_t garbage[] = { 0, 1, 0x80000000u, 0xDEADBEEFDEADBEEFull, UINT64_MAX, vms[0] + (1ull << 32),
                                 vcpu | 0xFFFF };
    bad = 0;
    for (i = 0; i < (int)(sizeof garbage / sizeof garbage[0]); i++) {
        h = 0x5EED;
        bad += pvgate_create_vcpu(garbage[i], &h) != -PVGATE_EINVAL || h != 0x5EED;
        bad += pvgate_destroy_vcpu(garbage[i]) != -PVGATE_EINVAL;
        bad += pvgate_destroy_vm(garbage[i]) != -PVGATE_EINVAL;
        bad += hc(PVGATE_GET_RFLAGS, garbage[i], 0, NULL, 0).status != -PVGATE_EINVAL;
        bad += hc(PVGATE_VM_DESTROY, garbage[i], 0, NULL, 0).status != -PVGATE_EINVAL;
    }
    CHECK(bad == 0, "garbage handles -> -EINVAL from create_vcpu, destroy_vcpu, destroy_vm, pv calls (%d wrong)", bad);

    /* Unknown call numbers. */
    const uint64_t unknown[] = { 0, 54, 0xFF, 0x108, 0xFFFF, 1ull << 32, UINT64_MAX };
    bad = 0;
    for (i = 0; i < (int)(sizeof unknown / sizeof unknown[0]); i++) {
        struct pvgate_out o = hc(unknown[i], vcpu, 0, NULL, 0);
        bad += o.status != -PVGATE_EINVAL || o.out[0] != 0 || o.out[3] != 0;
    }
    CHECK(bad == 0, "unknown call numbers -> -EINVAL, outputs zeroed (%d wrong)", bad);

    /* pvgate_hypercall's pointers. */
    struct pvgate_regs r = { PVGATE_GET_RFLAGS, vcpu, 0, 0, 0, 0, 0 };
    struct pvgate_out o;
    CHECK(pvgate_hypercall(NULL, &o, NULL, 0) == -PVGATE_EFAULT && o.status == -PVGATE_EFAULT,
          "hypercall with NULL regs -> -EFAULT, stored in out");
    CHECK(pvgate_hypercall(&r, NULL, NULL, 0) == -PVGATE_EFAULT, "hypercall with NULL out -> -EFAULT");
    CHECK(pvgate_hypercall(NULL, NULL, NULL, 0) == -PVGATE_EFAULT, "hypercall with everything NULL -> -EFAULT");
    memcpy(misaligned(), &r, sizeof r);
    CHECK(pvgate_hypercall((const struct pvgate_regs *)misaligned(), &o, NULL, 0) == -PVGATE_EFAULT &&
              o.status == -PVGATE_EFAULT,
          "hypercall with misaligned regs -> -EFAULT");
    CHECK(pvgate_hypercall(&r, (struct pvgate_out *)misaligned(), NULL, 0) == -PVGATE_EFAULT,
          "hypercall with misaligned out -> -EFAULT");

    /* regs is copied before out is written: they may be the same memory. */
    union {
        struct pvgate_regs r;
        struct pvgate_out o;
    } same;
    same.r = r;
    int64_t st = pvgate_hypercall(&same.r, &same.o, NULL, 0);
    CHECK(st == 0 && same.o.status == 0, "hypercall with regs and out in the same memory (%lld)", (long long)st);

    /* The shared CPUID buffer. */
    o = hc(PVGATE_HC_GET_SUPPORTED_CPUID, PVGATE_VM_PROTECTED, 0, table, 256);
    uint64_t n = o.out[0];
    CHECK(o.status == 0 && n > 0 && n <= 256, "supported cpuid into an aligned buffer: %llu entries", (unsigned long long)n);
    o = hc(PVGATE_HC_GET_SUPPORTED_CPUID, PVGATE_VM_PROTECTED, 0, (struct pvgate_cpuid_entry *)misaligned(), 256);
    CHECK(o.status == -PVGATE_EFAULT, "supported cpuid into a misaligned buffer -> -EFAULT (%lld)", (long long)o.status);
    o = hc(PVGATE_VCPU_AFTER_SET_CPUID, vcpu, 1, (struct pvgate_cpuid_entry *)misaligned(), 1);
    CHECK(o.status == -PVGATE_EFAULT, "set cpuid from a misaligned buffer -> -EFAULT (%lld)", (long long)o.status);
    const size_t huge[] = { 257, 1u << 20, SIZE_MAX / sizeof(struct pvgate_cpuid_entry) + 1, SIZE_MAX };
    bad = 0;
    for (i = 0; i < (int)(sizeof huge / sizeof huge[0]); i++) {
        bad += hc(PVGATE_HC_GET_SUPPORTED_CPUID, PVGATE_VM_PROTECTED, 0, table, huge[i]).status != -PVGATE_EINVAL;
        bad += hc(PVGATE_VCPU_AFTER_SET_CPUID, vcpu, 1, table, huge[i]).status != -PVGATE_EINVAL;
        bad += hc(PVGATE_GET_RFLAGS, vcpu, 0, table, huge[i]).status != -PVGATE_EINVAL;
    }
    CHECK(bad == 0, "a shared count above 256 entries (up to SIZE_MAX) -> -EINVAL (%d wrong)", bad);
    o = hc(PVGATE_VCPU_AFTER_SET_CPUID, vcpu, 3, NULL, 3);
    CHECK(o.status == -PVGATE_EFAULT, "NULL shared buffer with a count of 3 -> -EFAULT");
    o = hc(PVGATE_VCPU_AFTER_SET_CPUID, vcpu, 3, NULL, 0);
    CHECK(o.status == -PVGATE_EFAULT, "NULL shared buffer, count 0, call asks for 3 entries -> -EFAULT");
    o = hc(PVGATE_HC_GET_SUPPORTED_CPUID, PVGATE_VM_PROTECTED, 0, NULL, 0);
    CHECK(o.status == -PVGATE_ENOSPC, "supported cpuid into NULL with count 0 -> -ENOSPC (empty buffer)");
    o = hc(PVGATE_GET_RFLAGS, vcpu, 0, (struct pvgate_cpuid_entry *)misaligned(), 0);
    CHECK(o.status == 0, "count 0 never touches the shared pointer: get_rflags ok (%lld)", (long long)o.status);
    o = hc(PVGATE_VCPU_AFTER_SET_CPUID, vcpu, 300, table, 256);
    CHECK(o.status == -PVGATE_EINVAL, "set cpuid with a count of 300 -> -EINVAL");
    o = hc(PVGATE_VCPU_AFTER_SET_CPUID, vcpu, 10, table, 5);
    CHECK(o.status == -PVGATE_EFAULT, "set cpuid with a count beyond the buffer -> -EFAULT");
    o = hc(PVGATE_VCPU_AFTER_SET_CPUID, vcpu, UINT64_MAX, table, 256);
    CHECK(o.status == -PVGATE_EINVAL, "set cpuid with a count of UINT64_MAX -> -EINVAL");

    /* Audit and digest. */
    CHECK(pvgate_audit_event(0, NULL) == -PVGATE_EFAULT, "audit_event into NULL -> -EFAULT");
    CHECK(pvgate_audit_event(0, (struct pvgate_audit_event *)misaligned()) == -PVGATE_EFAULT,
          "audit_event into a misaligned buffer -> -EFAULT");
    struct pvgate_audit_event ev;
    CHECK(pvgate_audit_event(UINT64_MAX, &ev) == -PVGATE_EINVAL, "audit_event UINT64_MAX back -> -EINVAL");
    CHECK(pvgate_audit_count(UINT32_MAX, UINT32_MAX) == 0 && pvgate_audit_count(54, 0) == 0 &&
              pvgate_audit_count(1, 5) == 0,
          "audit_count of unknown call or effect numbers -> 0");
    CHECK(pvgate_policy_digest(NULL, NULL) == 0, "policy_digest with both NULL");
    CHECK(pvgate_policy_digest((uint8_t *)misaligned(), (char *)misaligned() + 40) == 0,
          "policy_digest into byte buffers at any alignment");

    /* Everything still works: the slots were never leaked. */
    bad = 0;
    for (i = 0; i < VMS; i++)
        bad += pvgate_destroy_vm(vms[i]) != 0;
    CHECK(bad == 0, "destroy all %d vms", VMS);
    bad = 0;
    for (i = 0; i < VMS; i++)
        bad += pvgate_create_vm(PVGATE_VM_NORMAL, &vms[i]) != 0;
    CHECK(bad == 0, "and create %d again", VMS);

    printf("%s\n", failures ? "FAILED" : "PASSED");
    return failures ? 1 : 0;
}
