//! Compiles every `kernels/*.cu` (and the test-only `tests/kernels/*.cu`) as host C++ against the
//! CUDA emulation in `emu/`, into one static library the Rust side launches kernels from.
//!
//! For each kernel file:
//! 1. run the C preprocessor over it (same defines and include path as the real compile, plus
//!    `RT_EMU_SCAN`, which makes `__global__` expand to a marker), so kernels stamped out by
//!    macros are seen exactly as the compiler will see them;
//! 2. find every `extern "C" __global__ void name(` and generate, in a wrapper translation unit
//!    that `#include`s the kernel file, a trampoline `name__emu(void** args)` (arguments read like
//!    `cuLaunchKernel` reads them) and a descriptor (name, family, parameter sizes and kinds);
//! 3. compile each wrapper as its own translation unit (static `__shared__` names may repeat
//!    across files), plus the scheduler (`emu/runtime.cpp`) and a registry table of all kernels.
//!
//! 4. compile each kernel file a second time, as the *profiling copy*: gcc's kernel-address
//!    instrumentation turns every load and store into a call the profiler (`emu/profile.cpp`)
//!    defines. The copy sits in an anonymous namespace with its `extern "C"` kernels renamed
//!    `name__prof` (macros), so its templates and inline helpers never merge with the plain
//!    copy's; its descriptors form a second registry (`rt_emu_prof_registry`).
//!
//! `RAGTUNE_EMU_SANITIZE=address` builds all of it with AddressSanitizer (see the crate docs for
//! what the test run must set); that variant has no profiling copy (libasan defines the same
//! hook names) and an empty profiling registry.

use std::collections::BTreeMap;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One kernel file to compile.
struct Source {
    /// `kernels/<family>.cu`: the family a `KernelCall` names.
    family: String,
    path: PathBuf,
    /// Test-only kernels (`tests/kernels/`) get a distinct symbol prefix.
    test_only: bool,
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    let kernels_dir = root.join("kernels");
    let include_dir = kernels_dir.join("include");
    let emu_dir = manifest.join("emu");
    let test_dir = manifest.join("tests/kernels");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));

    // Cargo rescans a whole directory named here for modified files, so added kernels count too.
    for dir in [&kernels_dir, &emu_dir, &test_dir] {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RAGTUNE_EMU_SANITIZE");
    let sanitize = env::var("RAGTUNE_EMU_SANITIZE").unwrap_or_default();
    let asan = match sanitize.as_str() {
        "" => false,
        "address" => true,
        other => panic!("RAGTUNE_EMU_SANITIZE={other}: only `address` is supported"),
    };

    let mut sources = cu_files(&kernels_dir, false);
    sources.extend(cu_files(&test_dir, true));

    let header = emu_dir.join("cuda_emu.h");
    let compiler = cc::Build::new().cpp(true).get_compiler();

    let mut build = emu_build(&header, &include_dir, &emu_dir);
    build.file(emu_dir.join("runtime.cpp"));
    if asan {
        // gcc leaves globals in user-named sections uninstrumented unless told: the static
        // __shared__ sections must keep their redzones so overruns are still reported.
        build
            .flag("-fsanitize=address")
            .flag("-fno-omit-frame-pointer")
            .flag("-fsanitize-sections=rtemu_sh_*");
    }

    // The profiling copy: same sources, every memory access a call into emu/profile.cpp.
    let mut prof_build = emu_build(&header, &include_dir, &emu_dir);
    prof_build
        .define("RT_EMU_PROFILE", None)
        // Optimised whatever the profile: a float4 / uint4 access must stay one 16-byte access,
        // as on a GPU, not be split into the pieces an unoptimised struct copy makes.
        .opt_level(2)
        .flag("-fsanitize=kernel-address")
        .flag("--param")
        .flag("asan-instrumentation-with-call-threshold=0")
        .flag("--param")
        .flag("asan-stack=0")
        .flag("--param")
        .flag("asan-globals=0");
    // Always built: under ASan it keeps only its entry points (libasan owns the hook names).
    build.file(emu_dir.join("profile.cpp"));
    let mut prof_entries = Vec::new();

    let mut registry_entries = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for src in &sources {
        let kernels = scan_kernels(&compiler, src, &header, &[&include_dir, &emu_dir.join("include")]);
        let prefix = if src.test_only { "t" } else { "k" };
        // The file's static __shared__ variables go to their own section; the linker's
        // __start_/__stop_ symbols bound it (weak: null when the file declares none).
        let section = format!("rtemu_sh_{prefix}_{}", ident(&src.family));
        let mut wrapper = format!(
            "// Generated by crates/kernel-emu/build.rs from {path}.\n\
             #define RT_EMU_SHARED_SECTION \"{section}\"\n#include \"{path}\"\n\n\
             extern \"C\" unsigned char __start_{section}[] __attribute__((weak));\n\
             extern \"C\" unsigned char __stop_{section}[] __attribute__((weak));\n\n",
            path = src.path.display(),
        );
        for name in &kernels {
            if let Some(first) = seen.insert(name.clone(), src.path.display().to_string()) {
                panic!(
                    "kernel `{name}` is defined in both {first} and {}: extern \"C\" names must be unique",
                    src.path.display()
                );
            }
            let sym = format!("rt_emu_{prefix}_{}__{name}", ident(&src.family));
            descriptor(&mut wrapper, name, &src.family, &sym, &section);
            registry_entries.push(sym);
        }
        let wrapper_path = out.join(format!("emu_{prefix}_{}.cpp", ident(&src.family)));
        write_if_changed(&wrapper_path, &wrapper);
        build.file(&wrapper_path);
        if !asan {
            let prof_path = out.join(format!("emu_prof_{prefix}_{}.cpp", ident(&src.family)));
            write_if_changed(&prof_path, &profiling_wrapper(src, prefix, &kernels, &mut prof_entries));
            prof_build.file(&prof_path);
        }
    }

    let mut registry = String::from("// Generated by crates/kernel-emu/build.rs: every emulated kernel.\n");
    for sym in &registry_entries {
        writeln!(registry, "extern \"C\" const RtEmuKernel {sym};").unwrap();
    }
    registry.push_str("extern \"C\" const RtEmuKernel* const rt_emu_registry[] = {\n");
    for sym in &registry_entries {
        writeln!(registry, "    &{sym},").unwrap();
    }
    registry.push_str("    nullptr,\n};\n");
    writeln!(registry, "extern \"C\" const unsigned rt_emu_registry_len = {};", registry_entries.len())
        .unwrap();
    let registry_path = out.join("emu_registry.cpp");
    write_if_changed(&registry_path, &registry);
    build.file(&registry_path);
    // The profiling registry goes into the profiling library itself, so that library only
    // depends on the plain one (runtime, hooks) and links ahead of it; under ASan it is empty.
    let prof_registry = format!(
        "// Generated by crates/kernel-emu/build.rs: every profiling copy.\n{}",
        registry_table("rt_emu_prof_registry", &prof_entries)
    );
    let prof_registry_path = out.join("emu_prof_registry.cpp");
    write_if_changed(&prof_registry_path, &prof_registry);
    if asan { &mut build } else { &mut prof_build }.file(&prof_registry_path);

    if !asan {
        prof_build.compile("ragtune_kernel_emu_prof");
    }
    build.compile("ragtune_kernel_emu");
    if asan {
        link_asan_runtime(&compiler);
    }
    // Lets the crate (and its tests) know which variant they are: see `sanitizer()`.
    println!("cargo:rustc-env=RAGTUNE_EMU_BUILT_WITH={}", if asan { "address" } else { "" });
}

/// The profiling copy of one kernel file: the file inside an anonymous namespace (internal
/// linkage for every template and inline helper), its kernels renamed `name__prof`, its static
/// `__shared__` variables in a section of their own, and one descriptor per kernel, named as the
/// plain copy's kernel is (the Rust side finds it by that name).
fn profiling_wrapper(src: &Source, prefix: &str, kernels: &[String], entries: &mut Vec<String>) -> String {
    let section = format!("rtemu_shp_{prefix}_{}", ident(&src.family));
    let mut w = format!(
        "// Generated by crates/kernel-emu/build.rs from {path}: the profiling copy.\n\
         #define RT_EMU_SHARED_SECTION \"{section}\"\n",
        path = src.path.display(),
    );
    for name in kernels {
        writeln!(w, "#define {name} {name}__prof").unwrap();
    }
    writeln!(
        w,
        "namespace {{\n#include \"{path}\"\n}}  // namespace\n\n\
         extern \"C\" unsigned char __start_{section}[] __attribute__((weak));\n\
         extern \"C\" unsigned char __stop_{section}[] __attribute__((weak));\n",
        path = src.path.display()
    )
    .unwrap();
    for name in kernels {
        let sym = format!("rt_emu_p_{prefix}_{}__{name}", ident(&src.family));
        // The descriptor's name string is not macro-expanded: it stays the kernel's real name.
        descriptor(&mut w, name, &src.family, &sym, &section);
        entries.push(sym);
    }
    w
}

/// A null-terminated table of descriptors, and its length.
fn registry_table(table: &str, entries: &[String]) -> String {
    let mut out = String::new();
    for sym in entries {
        writeln!(out, "extern \"C\" const RtEmuKernel {sym};").unwrap();
    }
    writeln!(out, "extern \"C\" const RtEmuKernel* const {table}[] = {{").unwrap();
    for sym in entries {
        writeln!(out, "    &{sym},").unwrap();
    }
    out.push_str("    nullptr,\n};\n");
    writeln!(out, "extern \"C\" const unsigned {table}_len = {};", entries.len()).unwrap();
    out
}

/// Links gcc's AddressSanitizer runtime statically (whole archive) into every binary that uses
/// this crate. Statically, because a dynamically linked runtime must come first in the binary's
/// library list, and rustc's link line puts `-lc` ahead of any library a build script names: the
/// runtime would then abort ("ASan runtime does not come first") or crash. Defined in the
/// executable itself, its malloc/free and interceptors take precedence with no LD_PRELOAD.
fn link_asan_runtime(compiler: &cc::Tool) {
    let out = Command::new(compiler.path())
        .arg("-print-file-name=libasan.a")
        .output()
        .unwrap_or_else(|e| panic!("asking {} for libasan.a: {e}", compiler.path().display()));
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let dir = path.parent().filter(|_| path.is_absolute() && path.exists()).unwrap_or_else(|| {
        panic!(
            "RAGTUNE_EMU_SANITIZE=address: {} has no libasan.a (install its ASan runtime)",
            compiler.path().display()
        )
    });
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=static:+whole-archive,-bundle=asan");
    // What the runtime itself needs.
    for lib in ["dl", "pthread", "rt", "m"] {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
}

/// The `.cu` files of a directory, sorted (missing directory = none).
fn cu_files(dir: &Path, test_only: bool) -> Vec<Source> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<Source> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .map(|path| Source {
            family: path.file_stem().unwrap().to_string_lossy().into_owned(),
            path: path.canonicalize().unwrap_or(path),
            test_only,
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// A C identifier made from a file stem.
fn ident(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn write_if_changed(path: &Path, text: &str) {
    if fs::read_to_string(path).ok().as_deref() != Some(text) {
        fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

/// Preprocesses `src` and returns the names of its `extern "C" __global__` kernels, in order.
fn scan_kernels(compiler: &cc::Tool, src: &Source, header: &Path, includes: &[&Path]) -> Vec<String> {
    let mut cmd = Command::new(compiler.path());
    cmd.args(["-E", "-P", "-x", "c++", "-std=c++17", "-DRAGTUNE_EMU", "-DRT_EMU_SCAN", "-include"])
        .arg(header);
    for dir in includes {
        cmd.arg("-I").arg(dir);
    }
    let output = cmd
        .arg(&src.path)
        .output()
        .unwrap_or_else(|e| panic!("running the preprocessor {}: {e}", compiler.path().display()));
    if !output.status.success() {
        panic!("preprocessing {} failed:\n{}", src.path.display(), String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut names: Vec<String> = Vec::new();
    let c_blocks = extern_c_blocks(&text);
    const MARKER: &str = "__rt_emu_global__";
    let mut pos = 0;
    while let Some(off) = text[pos..].find(MARKER) {
        let at = pos + off;
        pos = at + MARKER.len();
        let before = text[..at].trim_end();
        let rest = text[pos..].trim_start();
        let Some(rest) = rest.strip_prefix("void") else {
            println!("cargo:warning={}: a __global__ function not returning void?", src.path.display());
            continue;
        };
        let rest = rest.trim_start();
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if name.is_empty() || !rest[name.len()..].trim_start().starts_with('(') {
            continue;
        }
        if before.ends_with('>') {
            continue; // a template kernel: instantiated through an extern "C" wrapper, if at all
        }
        let in_c_block = c_blocks.iter().any(|r| r.contains(&at));
        if !before.ends_with("extern \"C\"") && !in_c_block {
            println!(
                "cargo:warning={}: __global__ {name} is not declared `extern \"C\" __global__ void {name}(...)`; \
                 neither NVRTC's loader nor the emulator can find it by name",
                src.path.display()
            );
            continue;
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Byte ranges of `extern "C" { ... }` blocks in preprocessed C++ (brace matching; string and
/// character literals skipped).
fn extern_c_blocks(text: &str) -> Vec<std::ops::Range<usize>> {
    let bytes = text.as_bytes();
    let mut blocks = Vec::new();
    let mut pos = 0;
    while let Some(off) = text[pos..].find("extern \"C\"") {
        let start = pos + off + "extern \"C\"".len();
        pos = start;
        let rest = text[start..].trim_start();
        if !rest.starts_with('{') {
            continue;
        }
        let open = text.len() - rest.len();
        let (mut depth, mut i, mut quote) = (0usize, open, None::<u8>);
        while i < bytes.len() {
            let c = bytes[i];
            match quote {
                Some(_) if c == b'\\' => i += 1,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == b'"' || c == b'\'' => quote = Some(c),
                None if c == b'{' => depth += 1,
                None if c == b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                None => {}
            }
            i += 1;
        }
        blocks.push(open..i);
        pos = i.min(text.len());
    }
    blocks
}

/// A kernel's trampoline (`name__emu`, arguments read as `cuLaunchKernel` reads them) and its
/// descriptor `sym`: name, family, parameter list and the bounds of the file's `__shared__`
/// section.
fn descriptor(w: &mut String, name: &str, family: &str, sym: &str, section: &str) {
    let sig = format!("RtEmuSig<decltype({name})>");
    writeln!(
        w,
        "static void {name}__emu(void** args) {{ rt_emu_invoke(&{name}, args); }}\n\
         extern \"C\" const RtEmuKernel {sym} = {{\"{name}\", \"{family}\", &{name}__emu, {sig}::count, \
         {sig}::list, &{sig}::signature, __start_{section}, __stop_{section}}};"
    )
    .unwrap();
}

/// The settings the emulator build and its profiling copy share: C++17 with the CUDA stand-in
/// header forced in, RAGTUNE_EMU, the kernel and stand-in include folders, and the warnings kernel
/// code trips that mean nothing on the host.
fn emu_build(header: &Path, include_dir: &Path, emu_dir: &Path) -> cc::Build {
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .flag("-std=c++17")
        .flag("-include")
        .flag(header.to_str().expect("utf-8 path"))
        .define("RAGTUNE_EMU", None)
        .include(include_dir)
        // Stand-ins for <cuda_fp16.h> & co., for kernels that include them directly.
        .include(emu_dir.join("include"))
        .include(emu_dir)
        // Kernels pun freely (float4 loads of bf16 rows); CUDA compilers allow it, so must we.
        .flag("-fno-strict-aliasing")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-unused-variable")
        .flag_if_supported("-Wno-unknown-pragmas");
    build
}
