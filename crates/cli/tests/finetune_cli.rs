//! `ragtune finetune` end to end through the built binary on the tiny llama-gqa fixture: LoRA on
//! all seven projections lowers the loss on a small JSONL file, the adapter folder it writes
//! loads back as a PEFT adapter and makes `generate --adapter` answer the trained question, and
//! bad input fails with a message naming it.

mod common;

use std::path::{Path, PathBuf};

use common::{dir, finetune_on_fixture, model_dir, p, ragtune};
use ragtune_compute::{DType, Device};
use ragtune_runtime::LlamaModel;
use ragtune_trainer::peft::load_adapter;

const DATA: &str = r#"{"prompt": "Question: What is the capital of France? Answer:", "completion": " Paris."}
{"text": "The robot watered the plants and counted the clouds."}

{"prompt": "Question: What colour is the sky? Answer:", "completion": " Blue."}
"#;

#[test]
fn finetune_lowers_the_loss_and_writes_a_peft_adapter() {
    let (d, data) = with_data("finetune-ok");
    let out = d.join("adapter");
    let model = model_dir();
    let lora = [
        "--lora-r",
        "4",
        "--lora-alpha",
        "8",
        "--targets",
        "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
    ];
    let steps =
        ["--steps", "30", "--lr", "1e-2", "--batch-size", "3", "--accumulate", "2", "--warmup-steps", "2"];
    let run =
        finetune_on_fixture(&data, &out, &[&lora[..], &steps, &["--json", "--eval", p(&data)]].concat());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let losses: Vec<f64> =
        summary["losses"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(losses.len(), 30);
    // The whole (3-example) data set every step: the loss must fall clearly.
    assert!(losses[29] < 0.1 * losses[0], "{losses:?}");
    assert_eq!(summary["examples"], 3);
    // Evaluated on the training file itself: the held-out loss must fall too.
    let (before, after) =
        (summary["eval_loss_before"].as_f64().unwrap(), summary["eval_loss_after"].as_f64().unwrap());
    assert!(after < 0.5 * before, "{before} -> {after}");
    assert_eq!(summary["grad_norms"].as_array().unwrap().len(), 30);

    let base = LlamaModel::from_dir(&model, DType::F32, Device::Cpu).unwrap();
    let adapter = load_adapter(&out, &base.config, &Device::Cpu).unwrap();
    assert_eq!(adapter.config.targets.len(), 7);
    assert_eq!(adapter.num_params() as u64, summary["trainable_params"].as_u64().unwrap());

    // `generate --adapter` answers the trained question; without the adapter it does not.
    assert_eq!(answer(&model, Some(&out)), " Paris.");
    assert_ne!(answer(&model, None), " Paris.");
    // Merged into the base, the model answers the same without the adapter.
    let merged = d.join("merged");
    let r = ragtune(&["merge", "--model", p(&model), "--adapter", p(&out), "--out", p(&merged)]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(answer(&merged, None), " Paris.");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn finetune_names_bad_input() {
    let d = dir("finetune-bad");
    let data = d.join("data.jsonl");
    let out = d.join("adapter");
    let run = |extra: &[&str]| {
        let r = finetune_on_fixture(&data, &out, &[&["--steps", "1"], extra].concat());
        assert!(!r.status.success(), "finetune {extra:?} should fail");
        String::from_utf8(r.stderr).unwrap()
    };
    std::fs::write(&data, "{\"question\": \"?\"}\n").unwrap();
    let err = run(&[]);
    assert!(err.contains("data.jsonl:1") && err.contains("\"prompt\""), "{err}");
    std::fs::write(&data, DATA).unwrap();
    let err = run(&["--targets", "q_proj,qkv"]);
    assert!(err.contains("`qkv`"), "{err}");
    assert!(!out.exists(), "no adapter may be written on failure");
    std::fs::remove_dir_all(&d).unwrap();
}

/// `finetune --json` with `extra` arguments on the fixture model; the summary, or the error.
fn finetune(data: &Path, out: &Path, extra: &[&str]) -> Result<serde_json::Value, String> {
    let r = finetune_output(data, out, extra);
    if r.status.success() {
        Ok(serde_json::from_slice(&r.stdout).unwrap())
    } else {
        Err(String::from_utf8(r.stderr).unwrap())
    }
}

/// [`finetune`]'s run, as the process's output.
fn finetune_output(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let fixed = ["--lora-r", "4", "--targets", "q_proj,v_proj,down_proj", "--warmup-steps", "2", "--json"];
    finetune_on_fixture(data, out, &[&fixed[..], extra].concat())
}

/// A scratch folder for `case` with [`DATA`] in its `data.jsonl`: (folder, data file).
fn with_data(case: &str) -> (PathBuf, PathBuf) {
    let d = dir(case);
    let data = d.join("data.jsonl");
    std::fs::write(&data, DATA).unwrap();
    (d, data)
}

/// [`with_data`], and a two-step run into `a` that checkpoints at step 2: (folder, data, `a`).
fn checkpointed(case: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (d, data) = with_data(case);
    let a = d.join("a");
    finetune(&data, &a, &["--steps", "2", "--checkpoint-every", "2", "--batch-size", "2"]).unwrap();
    (d, data, a)
}

/// What `model` (with `adapter`, if any) generates for the trained question, greedy, 8 tokens.
fn answer(model: &Path, adapter: Option<&Path>) -> String {
    let mut args =
        vec!["generate", "--model", p(model), "--prompt", "Question: What is the capital of France? Answer:"];
    args.extend(["--max-tokens", "8", "--device", "cpu", "--json"]);
    if let Some(a) = adapter {
        args.extend(["--adapter", p(a)]);
    }
    let r = ragtune(&args);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    v["text"].as_str().unwrap().to_string()
}

#[test]
fn a_resumed_run_continues_the_same_loss_trajectory() {
    let (d, data) = with_data("finetune-resume");
    let (a, b) = (d.join("a"), d.join("b"));
    let full = finetune(
        &data,
        &a,
        &["--steps", "6", "--checkpoint-every", "3", "--lr", "1e-2", "--batch-size", "2"],
    )
    .unwrap();
    let ck = a.join("checkpoint-3");
    let resumed = finetune(
        &data,
        &b,
        &["--steps", "6", "--lr", "1e-2", "--batch-size", "2", "--resume", ck.to_str().unwrap()],
    )
    .unwrap();
    let losses = |v: &serde_json::Value| -> Vec<f64> {
        v["losses"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
    };
    let (full, resumed) = (losses(&full), losses(&resumed));
    assert_eq!(resumed.len(), 3);
    for (x, y) in full[3..].iter().zip(&resumed) {
        assert!((x - y).abs() <= 1e-6, "full run {full:?} vs resumed {resumed:?}");
    }
    let weights = |p: &Path| std::fs::read(p.join("adapter_model.safetensors")).unwrap();
    assert_eq!(weights(&a), weights(&b), "the resumed run must end with the same adapter");
    assert_eq!(weights(&a), weights(&a.join("checkpoint-6/adapter")));

    // Other settings, or a damaged checkpoint, are refused with the reason.
    let err = finetune(
        &data,
        &b,
        &[
            "--steps",
            "6",
            "--lr",
            "1e-2",
            "--batch-size",
            "2",
            "--seed",
            "1",
            "--resume",
            ck.to_str().unwrap(),
        ],
    )
    .unwrap_err();
    assert!(err.contains("`seed`"), "{err}");
    let opt = ck.join("optimizer.safetensors");
    let mut bytes = std::fs::read(&opt).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&opt, bytes).unwrap();
    let err = finetune(
        &data,
        &b,
        &["--steps", "6", "--lr", "1e-2", "--batch-size", "2", "--resume", ck.to_str().unwrap()],
    )
    .unwrap_err();
    assert!(err.contains("checksum mismatch"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn lora_dropout_trains_resumes_on_the_same_masks_and_is_recorded() {
    let (d, data) = with_data("finetune-dropout");
    let (a, b, c) = (d.join("a"), d.join("b"), d.join("c"));
    let common = ["--steps", "6", "--lr", "1e-2", "--batch-size", "2", "--accumulate", "2"];
    fn with<'a>(common: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [common, &["--lora-dropout", "0.3"], extra].concat()
    }
    let full = finetune(&data, &a, &with(&common, &["--checkpoint-every", "3"])).unwrap();
    let ck = a.join("checkpoint-3");
    let resumed = finetune(&data, &b, &with(&common, &["--resume", ck.to_str().unwrap()])).unwrap();
    let plain = finetune(&data, &c, &common).unwrap();
    let losses = |v: &serde_json::Value| -> Vec<f64> {
        v["losses"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
    };
    let (full, resumed, plain) = (losses(&full), losses(&resumed), losses(&plain));
    assert_eq!(full[3..], resumed[..], "a resumed run must draw the masks of the uninterrupted one");
    let weights = |p: &Path| std::fs::read(p.join("adapter_model.safetensors")).unwrap();
    assert_eq!(weights(&a), weights(&b));
    // The first step's weights are the same (B = 0), so only the masks move its loss: with
    // B = 0 the adapter adds nothing and dropout cannot change the step-0 loss either.
    assert_eq!(full[0], plain[0]);
    assert!(full[1..].iter().zip(&plain[1..]).any(|(x, y)| x != y), "dropout changed nothing: {full:?}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("adapter_config.json")).unwrap()).unwrap();
    assert!((cfg["lora_dropout"].as_f64().unwrap() - 0.3).abs() < 1e-6, "{cfg}");
    // Resuming with another dropout is refused, and so is a probability outside [0, 1).
    let err = finetune(&data, &b, &[&common[..], &["--resume", ck.to_str().unwrap()]].concat()).unwrap_err();
    assert!(err.contains("`lora_dropout`"), "{err}");
    let err = finetune(&data, &b, &[&common[..], &["--lora-dropout", "1"]].concat()).unwrap_err();
    assert!(err.contains("--lora-dropout"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn full_mode_writes_a_model_folder_that_answers_like_its_training_data() {
    let (d, data) = with_data("finetune-full");
    let out = d.join("model");
    let summary =
        finetune(&data, &out, &["--mode", "full", "--steps", "20", "--lr", "3e-3", "--batch-size", "3"])
            .unwrap();
    let losses: Vec<f64> =
        summary["losses"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(losses[19] < 0.1 * losses[0], "{losses:?}");
    assert!(out.join("config.json").is_file() && out.join("tokenizer.json").is_file());
    assert_eq!(answer(&out, None), " Paris.");
    // Packed into rows of 16 tokens: more, full rows instead of 3 padded examples.
    let packed = finetune(&data, &d.join("packed"), &["--steps", "2", "--pack", "--max-len", "16"]).unwrap();
    assert!(packed["examples"].as_u64().unwrap() > 3, "{packed}");
    let err = finetune(&data, &out, &["--mode", "full", "--steps", "2", "--dtype", "bf16"]).unwrap_err();
    assert!(err.contains("--dtype f32"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// Issue 17: one line with nothing to learn is skipped and counted in the summary, with or
/// without --pack; a file of nothing but such lines is refused naming the file.
#[test]
fn a_too_short_line_is_skipped_and_counted() {
    let d = dir("finetune-short");
    let data = d.join("data.jsonl");
    std::fs::write(&data, format!("{DATA}{{\"text\": \"\"}}\n")).unwrap();
    for extra in [&[][..], &["--pack", "--max-len", "16"][..]] {
        let out = d.join("adapter");
        let mut args = vec!["--steps", "1"];
        args.extend_from_slice(extra);
        let summary = finetune(&data, &out, &args).unwrap_or_else(|e| panic!("{extra:?}: {e}"));
        assert_eq!(summary["skipped_examples"], 1, "{summary}");
        assert_eq!(summary["data_lines"], 4, "{summary}");
    }
    // The human summary says it in words.
    let r = finetune_on_fixture(&data, &d.join("adapter2"), &["--lora-r", "4", "--steps", "1"]);
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success() && stdout.contains("skipped 1 of 4 examples: too short"), "{stdout}");
    std::fs::write(&data, "{\"text\": \"\"}\n\n{\"text\": \"\"}\n").unwrap();
    let e = finetune(&data, &d.join("adapter3"), &["--steps", "1"]).unwrap_err();
    assert!(e.contains("data.jsonl") && e.contains("no examples") && e.contains("all 2 lines"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// Issue 17: a 20 MB line with --max-len 32 is cut before tokenizing (seconds and megabytes,
/// not 28 s and 4 GB).
#[test]
fn a_huge_line_costs_what_max_len_costs() {
    let d = dir("finetune-huge");
    let data = d.join("data.jsonl");
    let sentence = "The quick robot walks to the old library and reads a book about rivers. ";
    let huge = sentence.repeat(20_000_000 / sentence.len());
    std::fs::write(&data, format!("{}\n{DATA}", serde_json::json!({ "text": huge }))).unwrap();
    let start = std::time::Instant::now();
    let summary = finetune(&data, &d.join("adapter"), &["--steps", "1", "--max-len", "32"]).unwrap();
    assert_eq!(summary["examples"], 4, "{summary}");
    assert!(start.elapsed().as_secs_f64() < 20.0, "{:?}", start.elapsed());
    std::fs::remove_dir_all(&d).unwrap();
}

/// Issue 17: a killed checkpoint leaves `checkpoint-N.tmp/`; `--resume` on it says what it is and
/// which checkpoint to resume from, and the next successful checkpoint removes it (and the
/// temporaries of killed adapter writes).
#[test]
fn an_unfinished_checkpoint_is_named_and_cleaned() {
    let (d, data, a) = checkpointed("finetune-killed-ck");
    // What kill -9 during checkpoint 4 leaves: a half-written folder.
    let tmp = a.join("checkpoint-4.tmp");
    std::fs::create_dir_all(tmp.join("adapter")).unwrap();
    std::fs::write(tmp.join("optimizer.safetensors"), b"half").unwrap();
    let stale_adapter = a.join(".adapter_model.safetensors.ragtune-tmp.4294967294.1");
    std::fs::write(&stale_adapter, b"half").unwrap();
    let err = finetune(
        &data,
        &d.join("b"),
        &["--steps", "6", "--batch-size", "2", "--resume", tmp.to_str().unwrap()],
    )
    .unwrap_err();
    assert!(
        err.contains("an unfinished checkpoint, written when a run was killed")
            && err.contains("resume from")
            && err.contains("checkpoint-2"),
        "{err}"
    );
    // The next successful checkpoint (and adapter save) clean up.
    finetune(&data, &a, &["--steps", "2", "--checkpoint-every", "2", "--batch-size", "2"]).unwrap();
    assert!(!tmp.exists(), "the stale checkpoint-4.tmp is removed");
    if cfg!(target_os = "linux") {
        assert!(!stale_adapter.exists(), "a dead writer's temporary file is removed");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// What a save killed between its swap's two renames leaves: no `checkpoint-2`, the checkpoint
/// whole in `checkpoint-2.old`. `--resume checkpoint-2` resumes from that side and says so on
/// standard error (the `--json` summary on standard output stays one object); the same run
/// resumed from the folder put back trains to the same losses.
#[test]
fn a_checkpoint_left_in_its_old_side_is_resumed_with_a_note() {
    let (d, data, a) = checkpointed("finetune-ck-gap");
    let ck = a.join("checkpoint-2");
    let old = a.join("checkpoint-2.old");
    std::fs::rename(&ck, &old).unwrap();
    let resume = ["--steps", "4", "--batch-size", "2", "--resume", ck.to_str().unwrap()];
    let out = finetune_output(&data, &d.join("b"), &resume);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("note:") && err.contains("checkpoint-2 is missing") && err.contains("checkpoint-2.old"),
        "{err}"
    );
    let recovered: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    std::fs::rename(&old, &ck).unwrap();
    let put_back = finetune(&data, &d.join("c"), &resume).unwrap();
    assert_eq!(recovered["losses"], put_back["losses"]);
    std::fs::remove_dir_all(&d).unwrap();
}
