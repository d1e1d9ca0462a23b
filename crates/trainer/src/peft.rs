//! PEFT LoRA adapter folders in and out (`adapter_config.json` + `adapter_model.safetensors`):
//! the runtime's reader and writer (`ragtune_runtime::adapter::peft`), re-exported for the
//! trainer's callers.

pub use ragtune_runtime::adapter::peft::{
    CONFIG_FILE, MAX_RANK, TargetModules, WEIGHTS_FILE, load_adapter, save_adapter,
};
