//! Tensor construction, copies, safetensors views without copies, and device selection on a
//! machine without a GPU.

use std::sync::Arc;

use ragtune_compute::{ByteOwner, ComputeError, DType, Device, Tensor, safetensors_io};

#[test]
fn tensors_round_trip_every_dtype() {
    let v: Vec<f32> = (0..12).map(|i| i as f32 - 3.5).collect();
    let t = Tensor::from_slice(&v, &[3, 4]).unwrap();
    assert_eq!((t.shape(), t.dtype(), t.numel(), t.size_bytes()), (&[3usize, 4][..], DType::F32, 12, 48));
    assert_eq!(t.to_vec::<f32>().unwrap(), v);
    assert_eq!(t.reshape(&[2, 6]).unwrap().shape(), &[2, 6]);
    let ints = Tensor::from_slice(&[1u32, 2, 3], &[3]).unwrap();
    assert_eq!(ints.to_vec_f32().unwrap(), vec![1.0, 2.0, 3.0]);
    let bytes = Tensor::from_bytes(&[1, 2, 3, 4], DType::U8, &[2, 2]).unwrap();
    assert_eq!(bytes.as_slice::<u8>().unwrap(), &[1, 2, 3, 4]);
    let z = Tensor::zeros(&[5], DType::BF16, &Device::cpu()).unwrap();
    assert_eq!(z.to_vec_f32().unwrap(), vec![0.0; 5]);
}

fn safetensors_file() -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView, serialize};
    let a: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let b: Vec<u8> = [half::bf16::from_f32(0.5), half::bf16::from_f32(-2.0)]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let c: Vec<u8> = vec![0; 8];
    let views = vec![
        ("a".to_string(), TensorView::new(Dtype::F32, vec![2, 3], &a).unwrap()),
        ("b".to_string(), TensorView::new(Dtype::BF16, vec![2], &b).unwrap()),
        ("c".to_string(), TensorView::new(Dtype::I64, vec![1], &c).unwrap()),
    ];
    serialize(views, None).unwrap()
}

#[test]
fn safetensors_views_are_not_copied() {
    let file = safetensors_file();
    let owner: Arc<dyn ByteOwner> = Arc::new(file);
    let st = safetensors::SafeTensors::deserialize((*owner).as_ref()).unwrap();
    let a = safetensors_io::tensor_from_view(&owner, "a", &st.tensor("a").unwrap()).unwrap();
    assert!(a.is_shared_host_view(), "an aligned f32 tensor should view the file's bytes");
    assert_eq!(
        a.as_slice::<f32>().unwrap().as_ptr() as usize,
        st.tensor("a").unwrap().data().as_ptr() as usize
    );
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = safetensors_io::tensor_from_view(&owner, "b", &st.tensor("b").unwrap()).unwrap();
    assert_eq!(b.to_vec_f32().unwrap(), vec![0.5, -2.0]);
    // I64 is not a ragtune dtype: the error names the tensor and what is supported.
    let err = safetensors_io::read_all(owner.clone(), "model.safetensors").unwrap_err().to_string();
    assert!(err.contains("model.safetensors") && err.contains("`c`") && err.contains("BF16"), "{err}");
}

#[test]
fn corrupt_safetensors_name_the_file() {
    let mut file = safetensors_file();
    file.truncate(file.len() - 3);
    let err = safetensors_io::read_all(Arc::new(file), "weights/model.safetensors").unwrap_err();
    assert!(matches!(err, ComputeError::Format { .. }));
    assert!(err.to_string().contains("weights/model.safetensors"), "{err}");
}

#[test]
fn shared_bytes_out_of_range_are_rejected() {
    let owner: Arc<dyn ByteOwner> = Arc::new(vec![0u8; 16]);
    assert!(Tensor::from_shared_bytes(owner.clone(), 8, 16, DType::F32, &[4]).is_err());
    assert!(Tensor::from_shared_bytes(owner.clone(), 0, 16, DType::F32, &[3]).is_err());
    // Misaligned bytes are copied rather than viewed, so slices stay valid.
    let t = Tensor::from_shared_bytes(owner, 1, 8, DType::F32, &[2]).unwrap();
    assert_eq!(t.to_vec::<f32>().unwrap(), vec![0.0, 0.0]);
}

#[test]
fn auto_picks_the_cpu_and_says_why_on_a_machine_without_cuda() {
    if Device::cuda(0).is_ok() {
        println!("SKIPPED: this machine has a usable GPU; the no-GPU path is not testable here");
        return;
    }
    let choice = Device::choose("auto");
    assert!(choice.device.is_cpu());
    let why = choice.cpu_reason.expect("a reason");
    assert!(why.contains("CUDA") || why.contains("NVRTC") || why.contains("GPU"), "{why}");
    // Asking for CUDA explicitly is an error carrying the same kind of reason, not a panic.
    let err = Device::from_spec("cuda:1").unwrap_err();
    assert!(matches!(err, ComputeError::CudaUnavailable(_)), "{err}");
}

#[test]
fn device_specs_are_parsed_strictly() {
    assert_eq!(Device::parse_spec("cpu").unwrap(), None);
    assert_eq!(Device::parse_spec("CUDA:3").unwrap(), Some(3));
    assert_eq!(Device::parse_spec("cuda").unwrap(), Some(0));
    let err = Device::parse_spec("tpu").unwrap_err().to_string();
    assert!(err.contains("tpu") && err.contains("cuda:N"), "{err}");
    let choice = Device::choose("tpu");
    assert!(choice.device.is_cpu() && choice.cpu_reason.unwrap().contains("tpu"));
    assert!(Device::choose("cpu").device.is_cpu());
}

#[test]
fn absurd_shapes_are_errors_not_panics() {
    let huge = [usize::MAX / 2, 3];
    assert!(matches!(Tensor::zeros(&huge, DType::F32, &Device::cpu()), Err(ComputeError::Shape { .. })));
    assert!(matches!(Tensor::from_bytes(&[0; 8], DType::F32, &huge), Err(ComputeError::Shape { .. })));
    let owner: Arc<dyn ByteOwner> = Arc::new(vec![0u8; 16]);
    assert!(Tensor::from_shared_bytes(owner, usize::MAX, 8, DType::U8, &[8]).is_err());
}

#[test]
fn weights_default_to_bf16_on_a_kernel_device_and_f32_on_the_cpu() {
    use ragtune_kernel_emu::{EmuBackend, EmuOptions, Schedule};
    let gpu = Device::from_backend(Arc::new(EmuBackend::new(EmuOptions { schedule: Schedule::Forward })));
    assert_eq!(gpu.default_weight_dtype(), DType::BF16);
    assert_eq!(Device::Cpu.default_weight_dtype(), DType::F32);
}
