/*
 * Links against the pvgate image staticlib and replays crosvm's protected
 * boot (tests/data/traces/crosvm-boot-pvm.toml) through the C ABI, then a
 * denied write after the first run. Prints one line per check; exits 0 only
 * if every check held. Run by tests/c_image.rs.
 */
#include <stdio.h>
#include <string.h>

#include "pvgate.h"

static int failures;
static uint64_t vcpu;

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

static struct pvgate_out call(uint64_t nr, uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e) {
    struct pvgate_regs r = { nr, vcpu, a, b, c, d, e };
    struct pvgate_out o;
    memset(&o, 0xAA, sizeof o);
    pvgate_hypercall(&r, &o, NULL, 0);
    return o;
}

static void seg(uint64_t s, uint64_t sel, uint64_t limit, uint64_t ar) {
    struct pvgate_out o = call(PVGATE_SET_SEGMENT, s, sel, 0, limit, ar);
    CHECK(o.status == 0, "set_segment %llu selector %#llx", (unsigned long long)s, (unsigned long long)sel);
}

static void msr(uint32_t index, uint64_t value, int64_t want) {
    struct pvgate_out o = call(PVGATE_SET_MSR, index, value, 0, 0, 0);
    CHECK(o.status == want, "set_msr %#x = %#llx -> %lld (want %lld)", index, (unsigned long long)value,
          (long long)o.status, (long long)want);
}

int main(void) {
    static struct pvgate_cpuid_entry table[256];
    uint64_t vm = 0;
    char hex[65];

    CHECK(pvgate_init(PVGATE_CPU_REFERENCE) == 0, "init with the reference cpu model");
    CHECK(pvgate_init(PVGATE_CPU_REFERENCE) == -PVGATE_EBUSY, "a second init is refused");
    CHECK(pvgate_create_vm(PVGATE_VM_PROTECTED, &vm) == 0, "create a protected vm");
    CHECK(pvgate_create_vcpu(vm, &vcpu) == 0, "create its vcpu");

    /* KVM_GET_SUPPORTED_CPUID, crosvm's edits, KVM_SET_CPUID2. */
    struct pvgate_regs r = { PVGATE_HC_GET_SUPPORTED_CPUID, PVGATE_VM_PROTECTED, 0, 0, 0, 0, 0 };
    struct pvgate_out o;
    pvgate_hypercall(&r, &o, table, 256);
    uint64_t n = o.out[0];
    CHECK(o.status == 0 && n > 20 && n <= 256, "supported cpuid: %llu entries", (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        struct pvgate_cpuid_entry *e = &table[i];
        if (e->leaf == 1) {
            e->ecx |= 0x80000000u | 0x00200000u | 0x01000000u;
            e->ebx = 0x00000800u;
        }
        if (e->leaf == 4)
            e->eax &= ~0xFC000000u;
        if (e->leaf == 0xB) {
            e->eax = 0;
            e->ebx = 1;
            e->ecx = e->subleaf == 0 ? 0x100 : 0x201;
            e->edx = 0;
        }
    }
    struct pvgate_regs rc = { PVGATE_VCPU_AFTER_SET_CPUID, vcpu, n, 0, 0, 0, 0 };
    pvgate_hypercall(&rc, &o, table, 256);
    CHECK(o.status == 0 && o.out[0] == n, "vcpu_after_set_cpuid accepted (%lld)", (long long)o.status);

    /* KVM_SET_REGS: rdx, rsi, rdi, rsp in one window; rip in another. */
    CHECK(call(PVGATE_SET_REGS, PVGATE_RDX | 4 << 8, 0, 0x7000, 0, 0x8000).status == 0, "set_regs rdx..rsp");
    CHECK(call(PVGATE_SET_REGS, PVGATE_RIP | 1 << 8, 0xFFF0, 0, 0, 0).status == 0, "set_regs rip");
    CHECK(call(PVGATE_SET_RFLAGS, 0x2, 0, 0, 0, 0).status == 0, "set_rflags");
    seg(PVGATE_CS, 0x10, 0xFFFFFFFF, 0xC09B);
    seg(PVGATE_DS, 0x18, 0xFFFFFFFF, 0xC093);
    seg(PVGATE_ES, 0x18, 0xFFFFFFFF, 0xC093);
    seg(PVGATE_FS, 0x18, 0xFFFFFFFF, 0xC093);
    seg(PVGATE_GS, 0x18, 0xFFFFFFFF, 0xC093);
    seg(PVGATE_SS, 0x18, 0xFFFFFFFF, 0xC093);
    seg(PVGATE_TR, 0x20, 0xFFFFF, 0x808B);
    CHECK(call(PVGATE_SET_GDT, 0x1500, 0x27, 0, 0, 0).status == 0, "set_gdt");
    CHECK(call(PVGATE_SET_IDT, 0x1528, 0x7, 0, 0, 0).status == 0, "set_idt");
    CHECK(call(PVGATE_SET_CR0, 0x40000011, 0, 0, 0, 0).status == 0, "set_cr0");
    CHECK(call(PVGATE_SET_CR4, 0, 0, 0, 0, 0).status == 0, "set_cr4");
    CHECK(call(PVGATE_SET_EFER, 0, 0, 0, 0, 0).status == 0, "set_efer");
    CHECK(call(PVGATE_WRITE_TSC_OFFSET, 0, 0, 0, 0, 0).status == 0, "write_tsc_offset");
    msr(0x1A0, 0x1, 0);
    msr(0x200, 0xD0000000, 0);
    msr(0x201, 0x3FFFF0000800, 0);
    msr(0x202, 0xE0000000, 0);
    msr(0x203, 0x3FFFE0000800, 0);
    msr(0x2FF, 0x806, 0);
    o = call(PVGATE_GET_MSR, 0x1A0, 0, 0, 0, 0);
    CHECK(o.status == 0 && o.out[0] == 0x1801, "misc_enable reads back %#llx (bts/pebs_unavail forced)",
          (unsigned long long)o.out[0]);

    CHECK(call(PVGATE_VCPU_RUN, 0, 0, 0, 0, 0).status == -PVGATE_EPERM, "vcpu_run before vm_finalize -> -EPERM");
    CHECK(pvgate_vm_finalize(vm, PVGATE_PVMFW_NONE) == 0, "vm_finalize (no pvmfw)");
    CHECK(call(PVGATE_VCPU_RUN, 0, 0, 0, 0, 0).status == 0, "vcpu_run: first entry");
    o = call(PVGATE_INTERRUPT_ALLOWED, 1, 0, 0, 0, 0);
    CHECK(o.status == 0 && o.out[0] == 0, "interrupt_allowed for injection: 0 (RFLAGS.IF = 0 from boot)");
    CHECK(call(PVGATE_INJECT_IRQ, 0x30, 0, 0, 0, 0).status == -PVGATE_EBUSY, "inject_irq 0x30 with IF = 0 -> -EBUSY");
    CHECK(call(PVGATE_INTERRUPT_ALLOWED, 2, 0, 0, 0, 0).status == -PVGATE_EINVAL, "for_injection is a 0/1 flag");
    CHECK(call(PVGATE_WRITE_TSC_OFFSET, 0x1000, 0, 0, 0, 0).status == 0, "write_tsc_offset");
    CHECK(call(PVGATE_VCPU_RUN, 0, 0, 0, 0, 0).status == 0, "vcpu_run");

    /* After the first run the protected state is sealed. */
    uint64_t denied_before = pvgate_audit_count(PVGATE_SET_MSR, PVGATE_DENY);
    msr(0x1A0, 0x1, -PVGATE_EPERM);
    o = call(PVGATE_GET_RFLAGS, 0, 0, 0, 0, 0);
    CHECK(o.status == -PVGATE_EPERM && o.out[0] == 0 && o.out[3] == 0, "get_rflags refused, outputs zeroed");
    CHECK(pvgate_audit_count(PVGATE_SET_MSR, PVGATE_DENY) == denied_before + 1, "set_msr denial counted");
    CHECK(pvgate_audit_count(PVGATE_SET_MSR, PVGATE_ALLOW) == 6, "six msr writes allowed");
    CHECK(pvgate_audit_count(PVGATE_VCPU_RUN, PVGATE_ALLOW) == 2, "two runs counted");
    struct pvgate_audit_event ev;
    CHECK(pvgate_audit_event(1, &ev) == 0 && ev.call == PVGATE_SET_MSR && ev.effect == PVGATE_DENY &&
              ev.resource == (1ull << 60 | 0x1A0) && ev.handle == vcpu && ev.err == PVGATE_EPERM,
          "audit ring names set_msr of msr 0x1a0 on the vcpu (rule %d)", ev.rule);
    CHECK(pvgate_audit_event(0, &ev) == 0 && ev.call == PVGATE_GET_RFLAGS, "newest event: get_rflags");
    o = call(0x999, 0, 0, 0, 0, 0);
    CHECK(o.status == -PVGATE_EINVAL, "unknown call -> -EINVAL");
    CHECK(pvgate_audit_count(0, PVGATE_INVALID) == 1, "unknown call counted");

    CHECK(pvgate_destroy_vcpu(vcpu) == -PVGATE_EBUSY, "a running vcpu cannot be released");
    CHECK(pvgate_destroy_vm(vm) == 0, "destroy the vm");
    CHECK(call(PVGATE_VCPU_RUN, 0, 0, 0, 0, 0).status == -PVGATE_EINVAL, "its handles are dead");

    pvgate_policy_digest(NULL, hex);
    printf("digest %s\n", hex);
    printf("%s\n", failures ? "FAILED" : "PASSED");
    return failures ? 1 : 0;
}
