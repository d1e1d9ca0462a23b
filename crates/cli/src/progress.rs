//! Progress bars for long work (indicatif): rates and ETA on stderr, hidden under `--json` and
//! when stderr is not a terminal (indicatif draws nothing there), so scripts get clean output.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` units of `unit` (e.g. "vectors"), or a hidden one when `quiet`.
pub fn bar(len: u64, message: &str, unit: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let template =
        format!("{{msg:>10}} [{{bar:40}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, ETA {{eta}})");
    let style = ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = ProgressBar::new(len).with_style(style.progress_chars("=> "));
    bar.set_message(message.to_string());
    bar
}
