/*
 * pvgate.h: the C ABI of the pvgate image (crate pvgate-image, a staticlib).
 *
 * The image is a reviewed pvgate policy compiled into const tables plus the
 * hypervisor core (pvgate-hyp). The host makes PV calls through
 * pvgate_hypercall(); every call is decided by the policy first. ABI, state
 * model and audit interface: docs/hypervisor.md.
 *
 * Build: cargo pvgate image policy/default.toml --out DIR
 *        (or by hand: cargo build --release -p pvgate-image)
 * Link (x86_64-unknown-linux-gnu): cc -I DIR prog.c DIR/libpvgate_image.a
 *        -Wl,--gc-sections (docs/image.md)
 */
#ifndef PVGATE_H
#define PVGATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Errors: calls return 0 or a negated errno. */
#define PVGATE_EPERM 1   /* the policy refused the call */
#define PVGATE_EFAULT 14 /* a NULL or misaligned pointer, or a shared buffer shorter than asked */
#define PVGATE_ENOMEM 12 /* a buffer the host gave is too small for what it must hold */
#define PVGATE_EBUSY 16  /* in use / not torn down yet / injection not possible now */
#define PVGATE_EINVAL 22 /* unknown call, bad handle, bad argument or state, nshared > 256 */
#define PVGATE_ENOSPC 28 /* a fixed-capacity table is full */
#define PVGATE_EOPNOTSUPP 95 /* not supported on this machine or vCPU (e.g. no in-kernel LAPIC) */

/* vm_finalize's RCX (pvgate_vm_finalize's pvmfw) for "no pvmfw". */
#define PVGATE_PVMFW_NONE UINT64_MAX

/* pvgate_init() CPU models. */
#define PVGATE_CPU_REFERENCE 0u /* recorded Intel Xeon Gold 6252 (Cascade Lake), a built-in table */
#define PVGATE_CPU_HOST 1u      /* the CPU this runs on (CPUID instruction) */

/* VM kinds. */
#define PVGATE_VM_PROTECTED 0u
#define PVGATE_VM_NORMAL 1u

/* PV call numbers (RAX), as in gate's PvCall. */
enum pvgate_call {
    PVGATE_ENABLE_NMI_WINDOW = 1,
    PVGATE_ENABLE_IRQ_WINDOW = 2,
    PVGATE_INTERRUPT_ALLOWED = 3,
    PVGATE_NMI_ALLOWED = 4,
    PVGATE_GET_NMI_MASK = 5,
    PVGATE_INJECT_IRQ = 6,
    PVGATE_INJECT_NMI = 7,
    PVGATE_CANCEL_INJECTION = 8,
    PVGATE_UPDATE_CR8_INTERCEPT = 9,
    PVGATE_REFRESH_APICV_EXEC_CTRL = 10,
    PVGATE_LOAD_EOI_EXITMAP = 11,
    PVGATE_HWAPIC_ISR_UPDATE = 12,
    PVGATE_WRITE_TSC_OFFSET = 13,
    PVGATE_WRITE_TSC_MULTIPLIER = 14,
    PVGATE_SETUP_MCE = 15,
    PVGATE_VCPU_RUN = 16,
    PVGATE_COMPLETE_EMULATED_MSR = 17,
    PVGATE_PROTECTED_APIC_HAS_INTERRUPT = 18,
    PVGATE_SET_EFER = 19,
    PVGATE_SET_MSR = 20,
    PVGATE_GET_MSR = 21,
    PVGATE_SET_CR0 = 22,
    PVGATE_SET_CR4 = 23,
    PVGATE_SET_RFLAGS = 24,
    PVGATE_GET_RFLAGS = 25,
    PVGATE_SET_SEGMENT = 26,
    PVGATE_GET_SEGMENT = 27,
    PVGATE_GET_SEGMENT_BASE = 28,
    PVGATE_SET_IDT = 29,
    PVGATE_GET_IDT = 30,
    PVGATE_SET_GDT = 31,
    PVGATE_GET_GDT = 32,
    PVGATE_FLUSH_TLB_ALL = 33,
    PVGATE_FLUSH_TLB_CURRENT = 34,
    PVGATE_FLUSH_TLB_GVA = 35,
    PVGATE_FLUSH_TLB_GUEST = 36,
    PVGATE_VCPU_AFTER_SET_CPUID = 37,
    PVGATE_VCPU_ADD_FPSTATE = 38,
    PVGATE_LOAD_MMU_PGD = 39,
    PVGATE_SET_REGS = 40,
    PVGATE_SET_DR7 = 41,
    PVGATE_CACHE_REG = 42,
    PVGATE_SET_INTERRUPT_SHADOW = 43,
    PVGATE_GET_INTERRUPT_SHADOW = 44,
    PVGATE_INJECT_EXCEPTION = 45,
    PVGATE_SET_NMI_MASK = 46,
    PVGATE_UPDATE_EXCEPTION_BITMAP = 47,
    PVGATE_VCPU_RESET = 48,
    PVGATE_SET_VIRTUAL_APIC_MODE = 49,
    PVGATE_HWAPIC_IRR_UPDATE = 50,
    PVGATE_DELIVER_SIPI_VECTOR = 51,
    PVGATE_INJECT_IRQ_IF_ALLOWED = 52,
    PVGATE_VM_DESTROY = 53,
    PVGATE_VM_FINALIZE = 54, /* RBX VM handle, RCX pvmfw load address or PVGATE_PVMFW_NONE */
    /* Management calls (not PV calls: not decided by the policy). */
    PVGATE_HC_CREATE_VM = 0x100,
    PVGATE_HC_CREATE_VCPU = 0x101,
    PVGATE_HC_DESTROY_VCPU = 0x102,
    PVGATE_HC_FREE_VM = 0x103,
    PVGATE_HC_AUDIT_COUNT = 0x104,
    PVGATE_HC_AUDIT_EVENT = 0x105,
    PVGATE_HC_POLICY_DIGEST = 0x106,
    PVGATE_HC_GET_SUPPORTED_CPUID = 0x107,
    /* Guest calls (made by a running guest on a vCPU; hyp's own rules, not
     * the policy): RBX the calling vCPU, RCX APIC ID, RDX start address. */
    PVGATE_HC_GUEST_START_SECONDARY = 0x200,
};

/* Effects, as counted by the audit. */
enum pvgate_effect {
    PVGATE_ALLOW = 0,
    PVGATE_DENY = 1,
    PVGATE_IGNORE = 2,
    PVGATE_FILTER = 3,
    PVGATE_INVALID = 4,
};

/* Registers for set_regs windows and cache_reg, in kvm_regs order. */
enum pvgate_gpr {
    PVGATE_RAX, PVGATE_RBX, PVGATE_RCX, PVGATE_RDX, PVGATE_RSI, PVGATE_RDI,
    PVGATE_RSP, PVGATE_RBP, PVGATE_R8, PVGATE_R9, PVGATE_R10, PVGATE_R11,
    PVGATE_R12, PVGATE_R13, PVGATE_R14, PVGATE_R15, PVGATE_RIP,
};

/* Segment registers for set_segment / get_segment. */
enum pvgate_seg { PVGATE_CS, PVGATE_DS, PVGATE_ES, PVGATE_FS, PVGATE_GS, PVGATE_SS, PVGATE_TR, PVGATE_LDTR };

/* What the host puts in registers: RAX call, RBX handle, then arguments. */
struct pvgate_regs {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, r8;
};

/* What comes back: RAX status (0 or -errno), RBX/RCX/RDX/RSI outputs. */
struct pvgate_out {
    int64_t status;
    uint64_t out[4];
};

/* One CPUID entry of the shared buffer (like struct kvm_cpuid_entry2). */
struct pvgate_cpuid_entry {
    uint32_t leaf, subleaf, eax, ebx, ecx, edx;
};

/* One audit event (a failure, ignore or filter). */
struct pvgate_audit_event {
    uint64_t seq;      /* 1 = first ever */
    uint32_t call;     /* enum pvgate_call */
    uint32_t effect;   /* enum pvgate_effect */
    uint64_t handle;   /* vCPU handle (VM handle for vm_destroy) */
    uint64_t resource; /* bits 63:60 kind (0 call, 1 MSR, 2 CPUID, 3 vector), index below */
    int32_t rule;      /* deciding rule id, -1 = default deny */
    int32_t err;       /* the errno it failed with (PVGATE_EPERM, ...), 0 = none */
};

/*
 * Pointer contract (docs/hypervisor.md, "C ABI contract"). Every pointer is
 * checked before it is used: an out pointer that is NULL or not aligned for
 * its type is -EFAULT and the call does nothing (no VM or vCPU is created
 * whose handle cannot be returned). The caller's part: a non-NULL, aligned
 * pointer points at memory valid for the stated length, which no other
 * thread touches during the call. Integers (handles, call numbers, kinds,
 * counts) may take any value: unknown ones are -EINVAL.
 */

/* Installs the CPU model; 0, -EINVAL (unknown model) or -EBUSY (installed). */
int64_t pvgate_init(uint32_t cpu_model);
/* Creates a VM of a kind; stores its handle. handle: non-NULL, 8-byte
 * aligned, else -EFAULT (checked first: nothing is created). -EINVAL for an
 * unknown kind, -ENOSPC when every VM slot is in use. */
int64_t pvgate_create_vm(uint32_t kind, uint64_t *handle);
/* Creates a vCPU (phase setup); stores its handle. handle as for
 * pvgate_create_vm. -EINVAL for a bad VM handle, -ENOSPC when full. */
int64_t pvgate_create_vcpu(uint64_t vm, uint64_t *handle);
/* Releases a torn-down vCPU; -EBUSY before vm_destroy, -EINVAL bad handle. */
int64_t pvgate_destroy_vcpu(uint64_t vcpu);
/* vm_destroy (decided by the policy) and release of the VM's slot. */
int64_t pvgate_destroy_vm(uint64_t vm);
/* vm_finalize (decided by the policy): protected VMs only (-EINVAL), once
 * (-EBUSY); pvmfw is the pvmfw load address or PVGATE_PVMFW_NONE (-EINVAL
 * without a pvmfw image or when it does not fit below 2^64). Then the boot
 * vCPU (index 0) may run; a secondary only once the guest starts it. */
int64_t pvgate_vm_finalize(uint64_t vm, uint64_t pvmfw);
/* The guest call start_secondary, made by the running vCPU `caller`: starts
 * the vCPU with APIC ID apic_id (= its index) at start_ip (a 4 KiB page below
 * 1 MiB, else -EFAULT). -EINVAL for a normal VM, the boot vCPU or an unknown
 * APIC ID, -EBUSY if already started, -EOPNOTSUPP without an in-kernel LAPIC,
 * -EPERM if the caller is not running. */
int64_t pvgate_guest_start_secondary(uint64_t caller, uint32_t apic_id, uint64_t start_ip);
/* The hypercall entry. Returns the status and stores it in out->status.
 * regs: non-NULL, 8-byte aligned, readable (else -EFAULT); copied first, so
 *       it may overlap out or shared.
 * out:  non-NULL, 8-byte aligned, writable (else -EFAULT, and nothing is
 *       stored).
 * shared, nshared: the CPUID buffer of nshared entries. nshared > 256 is
 *       -EINVAL; nshared > 0 with a NULL or not 4-byte aligned shared is
 *       -EFAULT; nshared == 0 means no buffer (shared is never used).
 *       Valid for reads and writes of nshared entries, untouched by other
 *       threads during the call. */
int64_t pvgate_hypercall(const struct pvgate_regs *regs, struct pvgate_out *out,
                         struct pvgate_cpuid_entry *shared, size_t nshared);
/* The audit counter of (call, effect); call 0 counts unknown calls; 0 for
 * unknown call or effect numbers. */
uint64_t pvgate_audit_count(uint32_t call, uint32_t effect);
/* The back-th most recent audit event (0 = newest). out: non-NULL, 8-byte
 * aligned, else -EFAULT (checked first); -EINVAL if there is no such event. */
int64_t pvgate_audit_event(uint64_t back, struct pvgate_audit_event *out);
/* The digest record of the policy the image was built from, in the section
 * .pvgate_policy_digest of its own: magic "PVGATE\x01\0" (8 bytes, layout
 * version 1), then the 32-byte policy digest. `cargo pvgate digest --image
 * libpvgate_image.a` reads it from the library without running it
 * (docs/image.md). */
struct pvgate_digest_record {
    uint8_t magic[8];
    uint8_t digest[32];
};
extern const struct pvgate_digest_record pvgate_policy_digest_record;
/* The policy digest: 32 bytes to out, 64 hex characters + NUL to hex. Byte
 * buffers: any alignment, either may be NULL (then it is skipped). */
int64_t pvgate_policy_digest(uint8_t *out, char *hex);

#ifdef __cplusplus
}
#endif

#endif /* PVGATE_H */
