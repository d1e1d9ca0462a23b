//! NVRTC: compiling `kernels/<family>.cu` to a CUBIN (or PTX) at run time.
//!
//! cudarc loads `libnvrtc` lazily by library name and panics when it is absent, so everything
//! here goes through [`nvrtc_status`] first, which finds the library without panicking:
//!
//! 1. `RAGTUNE_NVRTC_LIB_DIR` (a folder holding `libnvrtc.so.13` and its builtins library, e.g.
//!    the pip wheels' `nvidia/cu13/lib`): both are opened by absolute path and kept open for the
//!    life of the process. The dynamic loader matches later loads by library name against the
//!    sonames already loaded, so cudarc's own load, and NVRTC's load of its builtins, find them
//!    with no `LD_LIBRARY_PATH`.
//! 2. The system's `libnvrtc` (a CUDA 13 toolkit on the library path).
//! 3. The wheels that `cargo xtask kernels` fetches into this checkout's
//!    `target/nvrtc-wheels`, when present: so `cargo test` exercises NVRTC after one
//!    `cargo xtask kernels`.
//!
//! [`compile`] hands the embedded headers of `kernels/include/` to NVRTC in memory and points
//! `-I` at the CUDA headers ([`cuda_include_dir`]): NVRTC has no built-in `cuda_bf16.h`.
//! [`parse_resource_usage`] reads the per-function report `--ptxas-options=-v` adds to the log.

use std::ffi::{CStr, CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cudarc::nvrtc::sys;

use crate::error::{ComputeError, Result};
use crate::kernel_sources;

/// The environment variable naming a folder with `libnvrtc.so.13` and its builtins library.
pub const NVRTC_LIB_DIR_ENV: &str = "RAGTUNE_NVRTC_LIB_DIR";
/// The environment variable naming the CUDA include folder (holding `cuda_bf16.h`).
pub const CUDA_INCLUDE_ENV: &str = "RAGTUNE_CUDA_INCLUDE";
/// The NVRTC library file this build binds to (cudarc's `cuda-13000` feature).
pub const NVRTC_LIB_NAME: &str = "libnvrtc.so.13";

/// Where `cargo xtask kernels` puts the pinned pip wheels, relative to the workspace root.
pub const WHEELS_DIR: &str = "target/nvrtc-wheels";
const WHEEL_LIB_SUBDIR: &str = "nvidia/cu13/lib";
const WHEEL_INCLUDE_SUBDIR: &str = "nvidia/cu13/include";

/// How to compile.
#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// Ask ptxas for its per-function resource report (`--ptxas-options=-v`) and for warnings
    /// on register spills (`--ptxas-options=--warn-on-spills`); read it back with [`parse_resource_usage`].
    /// Only real architectures (`sm_XX`) run ptxas.
    pub resource_report: bool,
    /// More NVRTC options, appended last (e.g. `-DRT_TILE=64`).
    pub extra_options: Vec<String>,
}

/// What NVRTC produced.
#[derive(Clone, Debug)]
pub struct CompileOutput {
    pub family: String,
    pub arch: String,
    /// The CUBIN for a real architecture (`sm_90a`), the PTX text for a virtual one
    /// (`compute_80`, without the trailing NUL).
    pub image: Vec<u8>,
    pub kind: ImageKind,
    /// NVRTC's log: warnings, and the ptxas report when asked for. Often empty.
    pub log: String,
    /// The options NVRTC was given, for reports and cache keys.
    pub options: Vec<String>,
}

/// The kind of image an architecture name asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// Machine code for one GPU generation (`sm_XX`).
    Cubin,
    /// PTX for a virtual architecture (`compute_XX`), JIT-compiled by the driver on load.
    Ptx,
}

/// One kernel's (or device function's) resources, from ptxas's `-v` report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceUsage {
    /// The function name as ptxas prints it (mangled unless declared `extern "C"`).
    pub function: String,
    /// The architecture ptxas compiled for (`sm_90a`), when the log says.
    pub arch: Option<String>,
    pub registers: u32,
    pub barriers: u32,
    /// Static shared memory in bytes (dynamic shared memory is chosen at launch).
    pub shared_bytes: u64,
    pub stack_frame_bytes: u64,
    pub spill_store_bytes: u64,
    pub spill_load_bytes: u64,
}

impl ResourceUsage {
    /// Whether registers spill to local memory — slow, and a CI failure.
    pub fn spills(&self) -> bool {
        self.spill_store_bytes > 0 || self.spill_load_bytes > 0
    }
}

struct Loaded {
    version: (i32, i32),
    /// The folder the library was opened from by absolute path, if it was.
    lib_dir: Option<PathBuf>,
    /// Kept open so later loads by name (cudarc's, NVRTC's own) resolve to these.
    _libs: Vec<libloading::Library>,
}

static NVRTC: OnceLock<std::result::Result<Loaded, String>> = OnceLock::new();

/// NVRTC's version `(major, minor)`, loading the library on the first call (see the module
/// docs for where it is looked for). Never panics; the error says how to provide NVRTC.
pub fn nvrtc_status() -> Result<(i32, i32)> {
    match NVRTC.get_or_init(load_nvrtc) {
        Ok(loaded) => Ok(loaded.version),
        Err(reason) => Err(ComputeError::CudaUnavailable(reason.clone())),
    }
}

/// The folder `libnvrtc.so.13` was opened from by absolute path, if it was (None when it came
/// from the system library path, or is not loaded yet / missing).
pub fn nvrtc_lib_dir() -> Option<PathBuf> {
    NVRTC.get().and_then(|r| r.as_ref().ok()).and_then(|l| l.lib_dir.clone())
}

fn not_found(detail: &str) -> String {
    format!(
        "NVRTC ({NVRTC_LIB_NAME}) not found: install the CUDA 13 toolkit or set {NVRTC_LIB_DIR_ENV} to a \
         folder holding {NVRTC_LIB_NAME} and libnvrtc-builtins.so.13.* (`cargo xtask kernels` fetches \
         them into {WHEELS_DIR}/{WHEEL_LIB_SUBDIR}){detail}"
    )
}

/// The wheels folder of this checkout (known at build time; absent on other machines).
fn workspace_wheels_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(WHEELS_DIR)
}

fn load_nvrtc() -> std::result::Result<Loaded, String> {
    let explicit = std::env::var_os(NVRTC_LIB_DIR_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
    let (libs, lib_dir) = if let Some(dir) = explicit {
        // An explicit folder that does not work is an error, not a cue to look elsewhere: the
        // user asked for that library.
        let libs = open_from_dir(&dir)
            .map_err(|e| not_found(&format!(" ({NVRTC_LIB_DIR_ENV}={}: {e})", dir.display())))?;
        (libs, Some(dir))
    } else if unsafe { sys::is_culib_present() } {
        (Vec::new(), None)
    } else {
        let dir = workspace_wheels_dir().join(WHEEL_LIB_SUBDIR);
        match open_from_dir(&dir) {
            Ok(libs) => (libs, Some(dir)),
            Err(_) => return Err(not_found("")),
        }
    };
    // SAFETY: is_culib_present only tries dlopen; the symbol calls below use cudarc's bindings
    // of the library just found. cudarc panics (rather than erring) when a load fails, hence
    // the catch_unwind.
    let version = catch_unwind(|| unsafe {
        if !sys::is_culib_present() {
            return Err(not_found(""));
        }
        let (mut major, mut minor) = (0 as c_int, 0 as c_int);
        match sys::nvrtcVersion(&mut major, &mut minor) {
            // cudarc tries `libnvrtc.so` before `libnvrtc.so.13`, so another toolkit on the
            // library path could win over the folder asked for; its bindings are CUDA 13's.
            sys::nvrtcResult::NVRTC_SUCCESS if major == 13 => Ok((major, minor)),
            sys::nvrtcResult::NVRTC_SUCCESS => Err(not_found(&format!(
                " (found NVRTC {major}.{minor} first on the library path, but this build needs 13.x)"
            ))),
            e => Err(format!("nvrtcVersion failed: {e:?}")),
        }
    })
    .unwrap_or_else(|panic| Err(not_found(&format!(" (loading it panicked: {})", panic_message(&panic)))))?;
    Ok(Loaded { version, lib_dir, _libs: libs })
}

/// Opens NVRTC's builtins library, then NVRTC itself, from `dir` by absolute path. The builtins
/// first: NVRTC loads them by name while compiling, which only succeeds from a folder that is
/// not on the library path if they are already loaded.
fn open_from_dir(dir: &Path) -> std::result::Result<Vec<libloading::Library>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list the folder: {e}"))?;
    let mut builtins: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libnvrtc-builtins.so."))
        })
        .collect();
    builtins.sort();
    if builtins.is_empty() {
        return Err("no libnvrtc-builtins.so.* in it".into());
    }
    let mut libs = Vec::new();
    for path in builtins.iter().chain(std::iter::once(&dir.join(NVRTC_LIB_NAME))) {
        // SAFETY: NVRTC's libraries run no initialisers with preconditions on us.
        let lib =
            unsafe { libloading::Library::new(path) }.map_err(|e| format!("{}: {e}", path.display()))?;
        libs.push(lib);
    }
    Ok(libs)
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// The folder holding the CUDA headers (`cuda_bf16.h`, `cuda_fp16.h`, `math_constants.h`) that
/// NVRTC gets as `-I`. In order: `RAGTUNE_CUDA_INCLUDE` (taken as given), `$CUDA_HOME/include`,
/// `/usr/local/cuda/include`, the `include` folder beside the NVRTC library folder in use (the
/// wheels' layout), this checkout's `target/nvrtc-wheels/nvidia/cu13/include`. The candidates
/// after the first must hold `cuda_fp16.h` to count.
pub fn cuda_include_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(CUDA_INCLUDE_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let mut candidates = Vec::new();
    if let Some(home) = std::env::var_os("CUDA_HOME").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(home).join("include"));
    }
    candidates.push(PathBuf::from("/usr/local/cuda/include"));
    if let Some(lib) = nvrtc_lib_dir() {
        candidates.push(lib.join("../include"));
    }
    candidates.push(workspace_wheels_dir().join(WHEEL_INCLUDE_SUBDIR));
    candidates.into_iter().find(|dir| dir.join("cuda_fp16.h").is_file())
}

/// Checks an architecture name (`sm_80`, `sm_90a`, `sm_100f`, `compute_80`) and says which kind
/// of image it yields. Anything else is refused before it reaches NVRTC or a file name.
pub fn image_kind(arch: &str) -> Result<ImageKind> {
    let bad = || ComputeError::Invalid {
        op: "nvrtc",
        detail: format!(
            "unknown GPU architecture `{arch}`: expected sm_XX (e.g. sm_80, sm_90a) or compute_XX (e.g. compute_80)"
        ),
    };
    let (kind, rest) = if let Some(rest) = arch.strip_prefix("sm_") {
        (ImageKind::Cubin, rest)
    } else if let Some(rest) = arch.strip_prefix("compute_") {
        (ImageKind::Ptx, rest)
    } else {
        return Err(bad());
    };
    let digits = rest.strip_suffix(['a', 'f']).unwrap_or(rest);
    if digits.len() < 2 || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(kind)
}

/// The options [`compile`] passes for `arch` (without the `-I`), for cache keys and reports.
pub fn compile_options(arch: &str, opts: &CompileOptions) -> Vec<String> {
    // No --use_fast_math: it flushes denormals and uses approximate division and
    // transcendentals, which the parity tolerances (1e-5 for f32) do not allow. Kernels opt in
    // per call site with the __expf-style intrinsics where that is fine.
    let mut options = vec![format!("--gpu-architecture={arch}"), "-std=c++17".into(), "-lineinfo".into()];
    if opts.resource_report && arch.starts_with("sm_") {
        // --warn-on-spills is a ptxas option; NVRTC itself rejects it.
        options.push("--ptxas-options=-v".into());
        options.push("--ptxas-options=--warn-on-spills".into());
    }
    options.extend(opts.extra_options.iter().cloned());
    options
}

/// Compiles `source` (the contents of `kernels/<family>.cu`) for `arch` with the embedded
/// `kernels/include/` headers. A compile error is [`ComputeError::Compile`] with NVRTC's whole
/// log; NVRTC missing is [`ComputeError::CudaUnavailable`].
pub fn compile(family: &str, source: &str, arch: &str, opts: &CompileOptions) -> Result<CompileOutput> {
    nvrtc_status()?;
    let kind = image_kind(arch)?;
    let invalid = |detail: String| ComputeError::Invalid { op: "nvrtc::compile", detail };
    let cstring = |what: &str, s: &str| {
        CString::new(s)
            .map_err(|_| invalid(format!("{what} of kernel family `{family}` contains a NUL byte")))
    };
    let c_source = cstring("the source", source)?;
    let c_name = cstring("the name", &format!("{family}.cu"))?;
    let headers = kernel_sources::headers();
    let c_header_names = headers
        .iter()
        .map(|(name, _)| cstring(&format!("header {name}"), name))
        .collect::<Result<Vec<_>>>()?;
    let c_header_texts = headers
        .iter()
        .map(|(name, text)| cstring(&format!("header {name}"), text))
        .collect::<Result<Vec<_>>>()?;

    let mut options = compile_options(arch, opts);
    let include = cuda_include_dir();
    if let Some(dir) = &include {
        options.push(format!("-I{}", dir.display()));
    }
    let c_options = options.iter().map(|o| cstring("an option", o)).collect::<Result<Vec<_>>>()?;

    let header_name_ptrs: Vec<*const c_char> = c_header_names.iter().map(|s| s.as_ptr()).collect();
    let header_text_ptrs: Vec<*const c_char> = c_header_texts.iter().map(|s| s.as_ptr()).collect();
    let option_ptrs: Vec<*const c_char> = c_options.iter().map(|s| s.as_ptr()).collect();

    let fail = |call: &str, result: sys::nvrtcResult| {
        ComputeError::cuda(format!("{call} for kernels/{family}.cu ({arch})"), error_string(result))
    };
    // SAFETY: every pointer handed to NVRTC points into a CString or Vec above, alive until the
    // end of this function; the program is destroyed on every path by `Program`'s drop. NVRTC
    // is loaded (nvrtc_status succeeded), and catch_unwind guards cudarc's symbol lookups.
    let outcome = catch_unwind(AssertUnwindSafe(|| unsafe {
        let mut program = Program(std::ptr::null_mut());
        let created = sys::nvrtcCreateProgram(
            &mut program.0,
            c_source.as_ptr(),
            c_name.as_ptr(),
            headers.len() as c_int,
            header_text_ptrs.as_ptr(),
            header_name_ptrs.as_ptr(),
        );
        if created != sys::nvrtcResult::NVRTC_SUCCESS {
            return Err(fail("nvrtcCreateProgram", created));
        }
        let compiled = sys::nvrtcCompileProgram(program.0, option_ptrs.len() as c_int, option_ptrs.as_ptr());
        let log = program_log(program.0);
        match compiled {
            sys::nvrtcResult::NVRTC_SUCCESS => {}
            sys::nvrtcResult::NVRTC_ERROR_COMPILATION => {
                let mut log = log.unwrap_or_else(|e| format!("(no log: {e})"));
                if log.contains("cannot open source file") {
                    log.push_str(&include_hint(include.as_deref()));
                }
                return Err(ComputeError::Compile { family: family.into(), arch: arch.into(), log });
            }
            e => {
                let detail = format!("{}; log: {}", error_string(e), log.unwrap_or_default());
                return Err(ComputeError::cuda(
                    format!("nvrtcCompileProgram for kernels/{family}.cu ({arch})"),
                    detail,
                ));
            }
        }
        let log =
            log.map_err(|e| ComputeError::cuda(format!("nvrtcGetProgramLog for kernels/{family}.cu"), e))?;
        let mut size = 0usize;
        let (size_call, size_result) = match kind {
            ImageKind::Cubin => ("nvrtcGetCUBINSize", sys::nvrtcGetCUBINSize(program.0, &mut size)),
            ImageKind::Ptx => ("nvrtcGetPTXSize", sys::nvrtcGetPTXSize(program.0, &mut size)),
        };
        if size_result != sys::nvrtcResult::NVRTC_SUCCESS {
            return Err(fail(size_call, size_result));
        }
        let mut image = vec![0u8; size];
        let (get_call, get_result) = match kind {
            ImageKind::Cubin => ("nvrtcGetCUBIN", sys::nvrtcGetCUBIN(program.0, image.as_mut_ptr().cast())),
            ImageKind::Ptx => ("nvrtcGetPTX", sys::nvrtcGetPTX(program.0, image.as_mut_ptr().cast())),
        };
        if get_result != sys::nvrtcResult::NVRTC_SUCCESS {
            return Err(fail(get_call, get_result));
        }
        if kind == ImageKind::Ptx {
            // The PTX size counts the terminating NUL; the text is what a loader wants.
            while image.last() == Some(&0) {
                image.pop();
            }
        }
        Ok((image, log))
    }));
    let (image, log) = outcome.unwrap_or_else(|panic| {
        Err(ComputeError::cuda(format!("NVRTC for kernels/{family}.cu ({arch})"), panic_message(&panic)))
    })?;
    Ok(CompileOutput { family: family.into(), arch: arch.into(), image, kind, log, options })
}

fn include_hint(include: Option<&Path>) -> String {
    match include {
        Some(dir) => format!(
            "\n(hint: the CUDA include folder given to NVRTC was {}; point {CUDA_INCLUDE_ENV} at the CUDA 13 \
             include folder that holds cuda_bf16.h)",
            dir.display()
        ),
        None => format!(
            "\n(hint: no CUDA include folder was found; set {CUDA_INCLUDE_ENV} or CUDA_HOME, or run \
             `cargo xtask kernels` to fetch the headers into {WHEELS_DIR})"
        ),
    }
}

/// Owns an NVRTC program handle and destroys it on drop.
struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the handle came from nvrtcCreateProgram and is destroyed once.
            unsafe {
                sys::nvrtcDestroyProgram(&mut self.0);
            }
        }
    }
}

/// # Safety
/// `program` must be a live program handle.
unsafe fn program_log(program: sys::nvrtcProgram) -> std::result::Result<String, String> {
    let mut size = 0usize;
    let result = unsafe { sys::nvrtcGetProgramLogSize(program, &mut size) };
    if result != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(format!("nvrtcGetProgramLogSize: {}", error_string(result)));
    }
    let mut buf = vec![0u8; size.max(1)];
    let result = unsafe { sys::nvrtcGetProgramLog(program, buf.as_mut_ptr().cast()) };
    if result != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(format!("nvrtcGetProgramLog: {}", error_string(result)));
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).trim_end().to_owned())
}

fn error_string(result: sys::nvrtcResult) -> String {
    // SAFETY: NVRTC returns a static NUL-terminated string (or null) for any result code.
    let text = unsafe { sys::nvrtcGetErrorString(result) };
    if text.is_null() {
        format!("{result:?}")
    } else {
        // SAFETY: non-null, NUL-terminated, static.
        unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned()
    }
}

/// Reads ptxas's per-function report out of an NVRTC log (compiled with
/// [`CompileOptions::resource_report`]). One entry per function, in the order the log names them.
/// Lines it does not know are skipped, so a changed report format gives fewer fields, not an error.
///
/// ```text
/// ptxas info    : Compiling entry function 'rms_norm_f32' for 'sm_90a'
/// ptxas info    : Function properties for rms_norm_f32
///     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
/// ptxas info    : Used 40 registers, used 1 barriers, 1024 bytes smem, 380 bytes cmem[0]
/// ```
pub fn parse_resource_usage(log: &str) -> Vec<ResourceUsage> {
    let mut found: Vec<ResourceUsage> = Vec::new();
    let mut current: Option<usize> = None;
    let mut arch: Option<String> = None;
    fn slot(found: &mut Vec<ResourceUsage>, name: &str, arch: &Option<String>) -> usize {
        if let Some(i) = found.iter().position(|u| u.function == name) {
            return i;
        }
        found.push(ResourceUsage { function: name.to_owned(), arch: arch.clone(), ..Default::default() });
        found.len() - 1
    }
    for line in log.lines() {
        let line = line.trim();
        let body =
            line.strip_prefix("ptxas info").map(|rest| rest.trim_start().trim_start_matches(':').trim());
        if let Some(rest) = body.and_then(|b| b.strip_prefix("Compiling entry function")) {
            // 'name' for 'sm_90a'
            let mut quoted = rest.split('\'').skip(1).step_by(2);
            if let Some(name) = quoted.next() {
                arch = quoted.next().map(str::to_owned);
                current = Some(slot(&mut found, name, &arch));
            }
        } else if let Some(name) = body.and_then(|b| b.strip_prefix("Function properties for")) {
            current = Some(slot(&mut found, name.trim(), &arch));
        } else if let Some(rest) = body.and_then(|b| b.strip_prefix("Used")) {
            if let Some(usage) = current.and_then(|i| found.get_mut(i)) {
                // "40 registers" (right after "Used"), "used 1 barriers", "1024 bytes smem".
                for part in rest.split(',') {
                    let mut words = part.split_whitespace().skip_while(|w| *w == "used");
                    let Some(Ok(number)) = words.next().map(str::parse::<u64>) else { continue };
                    match words.collect::<Vec<_>>().join(" ").as_str() {
                        "registers" => usage.registers = number as u32,
                        "barriers" => usage.barriers = number as u32,
                        "bytes smem" => usage.shared_bytes = number,
                        _ => {}
                    }
                }
            }
        } else if line.contains("bytes stack frame")
            && let Some(usage) = current.and_then(|i| found.get_mut(i))
        {
            // NVRTC prefixes the line with "ptxas         ."; take each number with the
            // words after it.
            for part in line.split(',') {
                let words: Vec<&str> = part.split_whitespace().collect();
                let Some(at) = words.iter().rposition(|w| w.parse::<u64>().is_ok()) else { continue };
                let Ok(number) = words[at].parse::<u64>() else { continue };
                match words[at + 1..].join(" ").as_str() {
                    "bytes stack frame" => usage.stack_frame_bytes = number,
                    "bytes spill stores" => usage.spill_store_bytes = number,
                    "bytes spill loads" => usage.spill_load_bytes = number,
                    _ => {}
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The NVRTC tests need the library; without it they say why and pass (`cargo xtask kernels`
    /// is the check that insists on NVRTC).
    fn nvrtc_or_skip(test: &str) -> bool {
        match nvrtc_status() {
            Ok(_) => true,
            Err(e) => {
                eprintln!("skipping {test}: {e}");
                false
            }
        }
    }

    const SAXPY: &str = r#"
#include "rt_common.cuh"
extern "C" __global__ void saxpy_bf16(bf16_t* __restrict__ y, const bf16_t* __restrict__ x, float a, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = rt_from_f32<bf16_t>(a * rt_to_f32(x[i]) + rt_to_f32(y[i]));
}
extern "C" __global__ void block_sum_f32(float* out, const float* x, int n) {
    __shared__ float partial[32];
    float v = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) v += x[i];
    v = rt_warp_sum(v);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.f;
        v = rt_warp_sum(v);
        if (threadIdx.x == 0) *out = v;
    }
}
"#;

    #[test]
    fn nvrtc_status_never_panics_and_is_stable() {
        let first = nvrtc_status().map_err(|e| e.to_string());
        let second = nvrtc_status().map_err(|e| e.to_string());
        assert_eq!(first, second);
        if let Err(e) = first {
            assert!(e.contains(NVRTC_LIB_NAME) && e.contains(NVRTC_LIB_DIR_ENV), "{e}");
        }
    }

    #[test]
    fn arch_names_are_checked() {
        assert_eq!(image_kind("sm_80").unwrap(), ImageKind::Cubin);
        assert_eq!(image_kind("sm_90a").unwrap(), ImageKind::Cubin);
        assert_eq!(image_kind("sm_100f").unwrap(), ImageKind::Cubin);
        assert_eq!(image_kind("compute_80").unwrap(), ImageKind::Ptx);
        for bad in ["", "sm_", "sm_8", "sm_9000", "90", "sm_90x", "compute_", "sm_80/../x", "SM_80"] {
            assert!(image_kind(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fast_math_is_not_on_by_default() {
        let opts = compile_options("sm_90a", &CompileOptions::default());
        assert!(!opts.iter().any(|o| o.contains("fast_math")), "{opts:?}");
        assert!(opts.contains(&"--gpu-architecture=sm_90a".to_string()));
        let report =
            compile_options("sm_90a", &CompileOptions { resource_report: true, ..Default::default() });
        assert!(
            report.contains(&"--ptxas-options=-v".to_string())
                && report.contains(&"--ptxas-options=--warn-on-spills".into())
        );
    }

    #[test]
    fn nvrtc_compiles_cubin_and_ptx_with_embedded_headers() {
        if !nvrtc_or_skip("nvrtc_compiles_cubin_and_ptx_with_embedded_headers") {
            return;
        }
        let opts = CompileOptions { resource_report: true, ..Default::default() };
        for arch in ["sm_80", "sm_90a"] {
            let out = compile("test_saxpy", SAXPY, arch, &opts).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(out.kind, ImageKind::Cubin);
            assert_eq!(&out.image[..4], b"\x7fELF", "a CUBIN is an ELF file");
            let usage = parse_resource_usage(&out.log);
            let names: Vec<&str> = usage.iter().map(|u| u.function.as_str()).collect();
            assert!(
                names.contains(&"saxpy_bf16") && names.contains(&"block_sum_f32"),
                "{names:?}\n{}",
                out.log
            );
            let sum = usage.iter().find(|u| u.function == "block_sum_f32").unwrap();
            assert_eq!(sum.shared_bytes, 128, "{}", out.log);
            assert!(sum.registers > 0 && !sum.spills());
            assert_eq!(sum.arch.as_deref(), Some(arch));
        }
        let ptx = compile("test_saxpy", SAXPY, "compute_80", &opts).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ptx.kind, ImageKind::Ptx);
        let text = String::from_utf8(ptx.image).unwrap();
        assert!(text.contains(".target sm_80") && text.contains(".entry saxpy_bf16"), "{text}");
    }

    #[test]
    fn nvrtc_compile_error_carries_the_log() {
        if !nvrtc_or_skip("nvrtc_compile_error_carries_the_log") {
            return;
        }
        let broken = "extern \"C\" __global__ void broken(float* x) { x[0] = undefined_name; }";
        match compile("broken", broken, "sm_90a", &CompileOptions::default()) {
            Err(ComputeError::Compile { family, arch, log }) => {
                assert_eq!((family.as_str(), arch.as_str()), ("broken", "sm_90a"));
                assert!(log.contains("broken.cu") && log.contains("undefined_name"), "{log}");
            }
            other => panic!("expected a compile error, got {other:?}"),
        }
        assert!(compile("nul", "a\0b", "sm_90a", &CompileOptions::default()).is_err());
        assert!(compile("x", "", "sm_9x", &CompileOptions::default()).is_err());
    }

    /// A real NVRTC 13.0 log (the SAXPY source above, sm_80, resource_report on).
    const REAL_NVRTC_LOG: &str = "\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'block_sum_f32' for 'sm_80'
ptxas info    : Function properties for block_sum_f32
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 12 registers, used 1 barriers, 128 bytes smem, 372 bytes cmem[0]
ptxas info    : Compile time = 3.503 ms
ptxas info    : Compiling entry function 'saxpy_bf16' for 'sm_80'
ptxas info    : Function properties for saxpy_bf16
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 8 registers, used 0 barriers, 376 bytes cmem[0]
ptxas info    : Compile time = 0.970 ms";

    #[test]
    fn parses_a_real_nvrtc_report() {
        let usage = parse_resource_usage(REAL_NVRTC_LOG);
        let arch = Some("sm_80".to_string());
        assert_eq!(
            usage,
            vec![
                ResourceUsage {
                    function: "block_sum_f32".into(),
                    arch: arch.clone(),
                    registers: 12,
                    barriers: 1,
                    shared_bytes: 128,
                    ..Default::default()
                },
                ResourceUsage { function: "saxpy_bf16".into(), arch, registers: 8, ..Default::default() },
            ]
        );
    }

    #[test]
    fn nvrtc_reports_real_spills() {
        if !nvrtc_or_skip("nvrtc_reports_real_spills") {
            return;
        }
        // 64 live accumulators under a 24-register cap must spill.
        let source = r#"
extern "C" __global__ void spilly(float* out, const float* x, int n) {
    float acc[64];
#pragma unroll
    for (int j = 0; j < 64; ++j) acc[j] = x[j * n + threadIdx.x];
    for (int i = 0; i < n; ++i) {
#pragma unroll
        for (int j = 0; j < 64; ++j) acc[j] = acc[j] * x[i] + acc[(j + 1) & 63];
    }
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < 64; ++j) s += acc[j] * (float)j;
    out[threadIdx.x] = s;
}
"#;
        let opts = CompileOptions { resource_report: true, extra_options: vec!["--maxrregcount=24".into()] };
        let out = compile("spilly", source, "sm_90a", &opts).unwrap_or_else(|e| panic!("{e}"));
        let usage = parse_resource_usage(&out.log);
        assert_eq!(usage.len(), 1, "{}", out.log);
        assert!(usage[0].spills() && usage[0].stack_frame_bytes > 0, "{:?}\n{}", usage[0], out.log);
        assert!(usage[0].registers <= 24, "{:?}", usage[0]);
    }

    #[test]
    fn parses_a_ptxas_report() {
        let log = "\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'rms_norm_f32' for 'sm_90a'
ptxas info    : Function properties for rms_norm_f32
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers, 1024 bytes smem, 380 bytes cmem[0]
ptxas info    : Compiling entry function '_Z6spillyPfi' for 'sm_90a'
ptxas info    : Function properties for _Z6spillyPfi
    24 bytes stack frame, 20 bytes spill stores, 16 bytes spill loads
ptxas info    : Used 255 registers, 368 bytes cmem[0]
ptxas warning : Registers are spilled to local memory in function '_Z6spillyPfi', 20 bytes spill stores, 16 bytes spill loads
";
        let usage = parse_resource_usage(log);
        assert_eq!(
            usage,
            vec![
                ResourceUsage {
                    function: "rms_norm_f32".into(),
                    arch: Some("sm_90a".into()),
                    registers: 40,
                    barriers: 1,
                    shared_bytes: 1024,
                    ..Default::default()
                },
                ResourceUsage {
                    function: "_Z6spillyPfi".into(),
                    arch: Some("sm_90a".into()),
                    registers: 255,
                    stack_frame_bytes: 24,
                    spill_store_bytes: 20,
                    spill_load_bytes: 16,
                    ..Default::default()
                },
            ]
        );
        assert!(usage[1].spills() && !usage[0].spills());
        assert!(parse_resource_usage("").is_empty());
        assert!(
            parse_resource_usage("garbage\nptxas info : Used x registers\n    bytes stack frame").is_empty()
        );
    }
}
