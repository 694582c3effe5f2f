//! Choosing and building the CPU model a trace names (`reference` or `host`).

use pvgate_hyp::CpuModel;

use crate::cpu_dump::CpuDump;
use crate::error::TraceError;

/// The `reference` CPU model's dump: a Xeon Gold 6252 (Cascade Lake),
/// values from raw-cpuid's test data (see the file's header).
pub const REFERENCE_CPU_DUMP: &str = include_str!("../../tests/data/cpu/xeon-gold-6252.cpuid");

/// The IA32_MCG_CAP offered by the `host` CPU model: MSRs cannot be read
/// from user space, so it is the reference model's (an assumption).
pub const HOST_MCG_CAP: u64 = 0x0f00_0c14;

/// The CPU model a trace names: `reference` (the recorded Xeon Gold 6252)
/// or `host` (the CPU this runs on, through raw-cpuid).
pub fn cpu_model(name: &str) -> Result<CpuModel, TraceError> {
    let err = |message: String| TraceError::Cpu {
        name: name.to_string(),
        message,
    };
    match name {
        "reference" => {
            let dump = CpuDump::parse(REFERENCE_CPU_DUMP).map_err(|e| err(e.to_string()))?;
            dump.model().map_err(|e| err(e.to_string()))
        }
        "host" => host_cpu_model().map_err(err),
        other => Err(err(format!(
            "unknown cpu model `{other}` (known: reference, host)"
        ))),
    }
}

#[cfg(target_arch = "x86_64")]
fn host_cpu_model() -> Result<CpuModel, String> {
    CpuModel::from_reader(raw_cpuid::CpuIdReaderNative, HOST_MCG_CAP).map_err(|e| e.to_string())
}

#[cfg(not(target_arch = "x86_64"))]
fn host_cpu_model() -> Result<CpuModel, String> {
    Err("the `host` cpu model needs an x86_64 host".to_string())
}
