//! The `extern "C" __global__` kernels a `kernels/<family>.cu` file defines, read without a C
//! compiler.
//!
//! Kernels are stamped out by function-like macros (`RT_NORM_KERNELS(float, f32)` defines
//! `rms_norm_f32`, ...), so a plain text search would find `rms_norm_##S`. This is just enough
//! of the C preprocessor for how `kernels/` writes them: comments removed, `\` continuations
//! joined, `#define NAME(params) body` collected, invocations expanded with their arguments
//! substituted and `##` pasted, the result rescanned for nested macros. Other directives
//! (`#include`, `#if`) are skipped: no kernel of `kernels/` sits behind a condition, and the
//! test that compares this list with the emulator's (which runs the real preprocessor) would say
//! so if one did.

use std::collections::HashMap;

/// A function-like macro: parameter names and body.
struct Macro {
    params: Vec<String>,
    body: String,
}

/// The kernel names `source` defines, in the order they appear.
pub fn kernel_names(source: &str) -> Vec<String> {
    let text = join_continuations(&strip_comments(source));
    let mut macros = HashMap::new();
    let mut program = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix('#') {
            if let Some(def) = rest.trim_start().strip_prefix("define")
                && let Some((name, m)) = parse_define(def)
            {
                macros.insert(name, m);
            }
            continue;
        }
        program.push_str(line);
        program.push('\n');
    }
    find_kernels(&expand(&program, &macros, 0))
}

/// Source without `//` and `/* */` comments; string and character literals are kept whole.
fn strip_comments(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    // Keep line breaks so a block comment cannot join two directives.
                    if b[i] == b'\n' {
                        out.push(b'\n');
                    }
                    i += 1;
                }
                i += 2;
                out.push(b' ');
            }
            q @ (b'"' | b'\'') => {
                out.push(q);
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        out.push(b[i]);
                        i += 1;
                    }
                    out.push(b[i]);
                    i += 1;
                }
                if i < b.len() {
                    out.push(q);
                    i += 1;
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("comments are removed on ASCII boundaries")
}

/// Lines ending in `\` joined with the next one.
fn join_continuations(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                out.push_str(head);
                out.push(' ');
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// `NAME(a, b) body` after `#define`; object-like macros are not needed for kernel names.
fn parse_define(def: &str) -> Option<(String, Macro)> {
    let def = def.trim_start();
    let name_len = def.find(|c: char| !is_ident(c)).unwrap_or(def.len());
    let (name, rest) = def.split_at(name_len);
    let rest = rest.strip_prefix('(')?;
    let close = rest.find(')')?;
    let params = rest[..close].split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect();
    Some((name.to_string(), Macro { params, body: rest[close + 1..].to_string() }))
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `text` with every invocation of a macro in `macros` replaced by its expansion.
fn expand(text: &str, macros: &HashMap<String, Macro>, depth: usize) -> String {
    assert!(depth < 32, "kernel macros nest more than 32 deep: a recursive #define?");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| is_ident(c)) {
        out.push_str(&rest[..start]);
        let word_len = rest[start..].find(|c: char| !is_ident(c)).unwrap_or(rest.len() - start);
        let word = &rest[start..start + word_len];
        let after = &rest[start + word_len..];
        let call = macros.get(word).and_then(|m| after.trim_start().strip_prefix('(').map(|args| (m, args)));
        match call.and_then(|(m, args)| split_args(args).map(|(a, tail)| (m, a, tail))) {
            Some((m, args, tail)) => {
                out.push_str(&expand(&substitute(m, &args), macros, depth + 1));
                rest = tail;
            }
            None => {
                out.push_str(word);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The comma-separated arguments up to the matching `)`, and the text after it.
fn split_args(s: &str) -> Option<(Vec<String>, &str)> {
    let (mut depth, mut args, mut from) = (0usize, Vec::new(), 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => {
                args.push(s[from..i].trim().to_string());
                return Some((args, &s[i + 1..]));
            }
            ')' => depth -= 1,
            ',' if depth == 0 => {
                args.push(s[from..i].trim().to_string());
                from = i + 1;
            }
            _ => {}
        }
    }
    None
}

/// The macro's body with each parameter replaced by its argument and `##` pasted.
fn substitute(m: &Macro, args: &[String]) -> String {
    let mut out = String::with_capacity(m.body.len());
    let mut rest = m.body.as_str();
    while let Some(start) = rest.find(|c: char| is_ident(c)) {
        out.push_str(&rest[..start]);
        let len = rest[start..].find(|c: char| !is_ident(c)).unwrap_or(rest.len() - start);
        let word = &rest[start..start + len];
        match m.params.iter().position(|p| p == word) {
            Some(i) => out.push_str(args.get(i).map_or("", String::as_str)),
            None => out.push_str(word),
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    paste(&out)
}

/// `a ## b` → `ab`.
fn paste(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, piece) in s.split("##").enumerate() {
        if i == 0 {
            out.push_str(piece.trim_end());
        } else {
            out.truncate(out.trim_end().len());
            out.push_str(piece.trim_start());
        }
    }
    out
}

/// Names after `extern "C" __global__ void`, skipping `__launch_bounds__(...)`.
fn find_kernels(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in text.match_indices("__global__") {
        if !text[..at].trim_end().ends_with("extern \"C\"") {
            continue;
        }
        let mut rest = text[at + "__global__".len()..].trim_start();
        rest = rest.strip_prefix("void").unwrap_or(rest).trim_start();
        if let Some(bounds) = rest.strip_prefix("__launch_bounds__") {
            let Some((_, tail)) = bounds.trim_start().strip_prefix('(').and_then(split_args) else {
                continue;
            };
            rest = tail.trim_start();
        }
        let len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if len > 0 && rest[len..].trim_start().starts_with('(') {
            names.push(rest[..len].to_string());
        }
    }
    names
}
