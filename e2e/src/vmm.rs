//! The VMM: one KVM VM with KVM's in-kernel interrupt controllers and PIT,
//! the guest memory of [`crate::boot`], one thread per vCPU, the minimal
//! UART of [`crate::serial`]. It loads exactly the [`VcpuSetup`]s it is
//! given (hyp's, or the host's own for the control run) and runs until the
//! guest resets (keyboard controller reset, triple fault) or time runs out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvm_bindings::{
    CpuId, KVM_PIT_SPEAKER_DUMMY, Msrs, kvm_cpuid_entry2, kvm_msr_entry, kvm_pit_config,
    kvm_userspace_memory_region,
};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd};
use vm_memory::{Bytes, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::cpuid_load;
use crate::serial::{self, Serial};
use crate::state::{VcpuSetup, kvm_cpuid, kvm_regs_of, kvm_sregs_of};

/// The i8042's command port; 0xFE there pulses the reset line.
const I8042_CMD: u16 = 0x64;
const I8042_RESET: u8 = 0xfe;

/// How the guest stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The guest reset the machine through the keyboard controller.
    Reset,
    /// A triple fault (KVM_EXIT_SHUTDOWN).
    Shutdown,
    /// The time limit passed.
    Timeout,
    /// The console showed the text the caller waited for.
    Seen,
    /// A VM exit the VMM does not handle, or a failed ioctl.
    Error(String),
}

/// What one boot produced.
#[derive(Debug)]
pub struct Boot {
    /// Everything the guest wrote to the serial port.
    pub console: String,
    /// How it stopped.
    pub stop: Stop,
    /// From the first KVM_RUN to the stop.
    pub elapsed: Duration,
    /// KVM_GET_CPUID2 of each vCPU before it ran: what KVM made of the table.
    pub kvm_cpuid: Vec<Vec<kvm_cpuid_entry2>>,
    /// Each vCPU's registers when it stopped (for failure messages).
    pub last: Vec<String>,
}

/// Why a VM could not be set up.
#[derive(Debug)]
pub struct VmmError(pub String);

fn err<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> VmmError {
    move |e| VmmError(format!("{what}: {e:?}"))
}

/// Boots `mem` with one vCPU per `setups` entry, each loaded with exactly
/// its setup; the first is the boot vCPU. With `until`, stops as soon as
/// the console shows that text ([`Stop::Seen`]).
pub fn run(
    kvm: &Kvm,
    mem: &GuestMemoryMmap,
    setups: &[VcpuSetup],
    supported: &[kvm_cpuid_entry2],
    limit: Duration,
    until: Option<&str>,
) -> Result<Boot, VmmError> {
    cpuid_load::permit_dynamic_xfeatures(setups.iter().map(|s| s.cpuid.as_slice()))
        .map_err(|e| VmmError(format!("CPUID table for KVM: {e}")))?;
    let vm = kvm.create_vm().map_err(err("KVM_CREATE_VM"))?;
    vm.set_tss_address(0xfffb_d000)
        .map_err(err("KVM_SET_TSS_ADDR"))?;
    vm.create_irq_chip().map_err(err("KVM_CREATE_IRQCHIP"))?;
    vm.create_pit2(kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    })
    .map_err(err("KVM_CREATE_PIT2"))?;
    for (slot, region) in mem.iter().enumerate() {
        let r = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: region.as_ptr() as u64,
        };
        // SAFETY: the region is mapped for as long as `mem` lives, and
        // `mem` outlives the VM: `run` joins every vCPU thread and drops
        // the VM before it returns.
        unsafe { vm.set_user_memory_region(r) }.map_err(err("KVM_SET_USER_MEMORY_REGION"))?;
    }

    let mut vcpus = Vec::new();
    let mut kvm_tables = Vec::new();
    for (id, setup) in setups.iter().enumerate() {
        let vcpu = vm.create_vcpu(id as u64).map_err(err("KVM_CREATE_VCPU"))?;
        load(kvm, &vcpu, setup, supported)?;
        kvm_tables.push(
            vcpu.get_cpuid2(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
                .map_err(err("KVM_GET_CPUID2"))?
                .as_slice()
                .to_vec(),
        );
        vcpus.push(vcpu);
    }

    install_kick_handler();
    let serial = Arc::new(Mutex::new(Serial::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Stop>();
    let started = Instant::now();
    let mut threads = Vec::new();
    for mut vcpu in vcpus {
        let (serial, stop, tx, mem) = (serial.clone(), stop.clone(), tx.clone(), mem.clone());
        threads.push(std::thread::spawn(move || {
            let why = vcpu_loop(&mut vcpu, &serial, &stop, &mem);
            let _ = tx.send(why);
            vcpu
        }));
    }
    drop(tx);
    let why = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(why) => break why,
            Err(mpsc::RecvTimeoutError::Disconnected) => break Stop::Error("no vCPU".into()),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if started.elapsed() > limit {
            break Stop::Timeout;
        }
        let seen = until.is_some_and(|text| {
            serial
                .lock()
                .is_ok_and(|s| s.output.windows(text.len()).any(|w| w == text.as_bytes()))
        });
        if seen {
            break Stop::Seen;
        }
    };
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    // Kick every vCPU thread out of KVM_RUN until all have ended.
    let mut done = Vec::new();
    for t in threads {
        loop {
            if t.is_finished() {
                break;
            }
            // SAFETY: the thread is alive (not finished) and its handle
            // owned here; the signal's handler does nothing.
            unsafe {
                libc::pthread_kill(
                    std::os::unix::thread::JoinHandleExt::as_pthread_t(&t),
                    kick_signal(),
                )
            };
            std::thread::sleep(Duration::from_millis(5));
        }
        done.push(t.join());
    }
    let last = done
        .iter()
        .map(|t| match t {
            Ok(v) => match (v.get_regs(), v.get_sregs()) {
                (Ok(r), Ok(s)) => format!(
                    "rip {:#x} rdi {:#x} rsp {:#x} cr0 {:#x} cr3 {:#x} cr4 {:#x} efer {:#x} cs.base {:#x}",
                    r.rip, r.rdi, r.rsp, s.cr0, s.cr3, s.cr4, s.efer, s.cs.base
                ),
                other => format!("{other:?}"),
            },
            Err(_) => "the vCPU thread panicked".into(),
        })
        .collect();
    drop(done);
    drop(vm);
    let console = serial
        .lock()
        .map(|s| String::from_utf8_lossy(&s.output).into_owned())
        .unwrap_or_default();
    Ok(Boot {
        console,
        stop: why,
        elapsed,
        kvm_cpuid: kvm_tables,
        last,
    })
}

/// Loads one vCPU: CPUID, MSRs (every one must be taken), registers.
/// A refused CPUID table is reported with the entry KVM refuses
/// ([`cpuid_load::refused_entry`]) when one alone is to blame.
fn load(
    kvm: &Kvm,
    vcpu: &VcpuFd,
    setup: &VcpuSetup,
    supported: &[kvm_cpuid_entry2],
) -> Result<(), VmmError> {
    let entries = kvm_cpuid(&setup.cpuid, supported);
    let table = CpuId::from_entries(&entries).map_err(err("CPUID table for KVM"))?;
    vcpu.set_cpuid2(&table).map_err(|e| {
        let culprit = match cpuid_load::refused_entry(kvm, &entries) {
            Some(c) => format!(
                "refused entry: leaf {:#x} subleaf {} (flags {}) EAX {:#010x} EBX {:#010x} ECX {:#010x} EDX {:#010x}",
                c.function, c.index, c.flags, c.eax, c.ebx, c.ecx, c.edx
            ),
            None => "no single entry to blame".into(),
        };
        VmmError(format!(
            "KVM_SET_CPUID2: {e:?} on {} entries; {culprit}",
            entries.len()
        ))
    })?;
    let entries: Vec<kvm_msr_entry> = setup
        .msrs
        .iter()
        .map(|&(index, data)| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    let msrs = Msrs::from_entries(&entries).map_err(err("MSRs for KVM"))?;
    let n = vcpu.set_msrs(&msrs).map_err(err("KVM_SET_MSRS"))?;
    if n != entries.len() {
        return Err(VmmError(format!(
            "KVM_SET_MSRS took {n} of {} MSRs; refused {:#x?}",
            entries.len(),
            entries.get(n)
        )));
    }
    if let Some(r) = &setup.regs {
        let sregs = vcpu.get_sregs().map_err(err("KVM_GET_SREGS"))?;
        vcpu.set_sregs(&kvm_sregs_of(r, sregs))
            .map_err(err("KVM_SET_SREGS"))?;
        vcpu.set_regs(&kvm_regs_of(r))
            .map_err(err("KVM_SET_REGS"))?;
    }
    Ok(())
}

/// INT3.
const INT3: u8 = 0xcc;
/// The #BP vector.
const VECTOR_BP: u8 = 3;

/// Delivers the #BP of an INT3 the KVM's instruction emulator could not
/// (a software KVM stops with KVM_EXIT_INTERNAL_ERROR at the kernel's
/// `int3_selftest`): RIP past the INT3 (a trap), #BP injected. Returns
/// whether the instruction at RIP was an INT3.
fn deliver_int3(vcpu: &VcpuFd, mem: &GuestMemoryMmap) -> bool {
    let Ok(mut regs) = vcpu.get_regs() else {
        return false;
    };
    let Ok(t) = vcpu.translate_gva(regs.rip) else {
        return false;
    };
    let byte: Result<u8, _> = mem.read_obj(vm_memory::GuestAddress(t.physical_address));
    if t.valid == 0 || byte.ok() != Some(INT3) {
        return false;
    }
    let Ok(mut events) = vcpu.get_vcpu_events() else {
        return false;
    };
    regs.rip = regs.rip.wrapping_add(1);
    events.exception.injected = 1;
    events.exception.nr = VECTOR_BP;
    events.exception.has_error_code = 0;
    events.exception.error_code = 0;
    vcpu.set_regs(&regs).is_ok() && vcpu.set_vcpu_events(&events).is_ok()
}

fn vcpu_loop(
    vcpu: &mut VcpuFd,
    serial: &Mutex<Serial>,
    stop: &AtomicBool,
    mem: &GuestMemoryMmap,
) -> Stop {
    loop {
        if stop.load(Ordering::SeqCst) {
            return Stop::Timeout;
        }
        let mut internal_error = false;
        match vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => {
                let byte = data.first().copied().unwrap_or(0);
                if serial::PORTS.contains(&port) {
                    if let Ok(mut s) = serial.lock() {
                        s.write(port, byte);
                    }
                } else if port == I8042_CMD && byte == I8042_RESET {
                    return Stop::Reset;
                }
            }
            Ok(VcpuExit::IoIn(port, data)) => {
                let value = if serial::PORTS.contains(&port) {
                    serial.lock().map(|s| s.read(port)).unwrap_or(0xff)
                } else if port == I8042_CMD {
                    0 // status: both buffers empty
                } else {
                    0xff // nothing there
                };
                data.fill(value);
            }
            Ok(VcpuExit::MmioRead(_, data)) => data.fill(0),
            Ok(VcpuExit::MmioWrite(..)) => {}
            Ok(VcpuExit::Shutdown) => return Stop::Shutdown,
            Ok(VcpuExit::InternalError) => internal_error = true,
            Ok(VcpuExit::Hlt) => return Stop::Error("HLT with an in-kernel LAPIC".into()),
            Ok(other) => return Stop::Error(format!("unhandled exit {other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {}
            Err(e) => return Stop::Error(format!("KVM_RUN: {e}")),
        }
        if internal_error && !deliver_int3(vcpu, mem) {
            return Stop::Error("unhandled exit InternalError".into());
        }
    }
}

fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int) {}

/// A handler for the kick signal that does nothing, installed without
/// SA_RESTART so the signal makes KVM_RUN return EINTR.
fn install_kick_handler() {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value;
    // the handler is an async-signal-safe function that does nothing.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_kick as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(kick_signal(), &sa, std::ptr::null_mut());
    }
}
