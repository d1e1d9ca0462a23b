//! Tensors from safetensors files without copying: a tensor views its bytes inside the buffer
//! that holds the file (a `Vec<u8>`, a memory map ...), which stays alive while any tensor does.

use std::sync::Arc;

use safetensors::{Dtype as StDtype, SafeTensors};

use crate::dtype::DType;
use crate::error::{ComputeError, Result};
use crate::host::ByteOwner;
use crate::tensor::Tensor;

/// The ragtune dtype of a safetensors dtype, or an error naming the tensor.
pub fn dtype_of(name: &str, dtype: StDtype) -> Result<DType> {
    Ok(match dtype {
        StDtype::F32 => DType::F32,
        StDtype::BF16 => DType::BF16,
        StDtype::F16 => DType::F16,
        StDtype::I32 => DType::I32,
        StDtype::U32 => DType::U32,
        StDtype::U8 => DType::U8,
        other => {
            return Err(ComputeError::dtype(
                "safetensors",
                format!("tensor `{name}` is {other:?}; ragtune reads F32, BF16, F16, I32, U32 and U8"),
            ));
        }
    })
}

/// A tensor viewing `view`'s bytes, which must lie inside `owner` (the buffer `view` was parsed
/// from). No copy is made unless the bytes are misaligned for their dtype.
pub fn tensor_from_view(
    owner: &Arc<dyn ByteOwner>,
    name: &str,
    view: &safetensors::tensor::TensorView<'_>,
) -> Result<Tensor> {
    let dtype = dtype_of(name, view.dtype())?;
    let base = (**owner).as_ref().as_ptr() as usize;
    let total = (**owner).as_ref().len();
    let start = view.data().as_ptr() as usize;
    if start < base || start + view.data().len() > base + total {
        return Err(ComputeError::invalid(
            "safetensors",
            format!("tensor `{name}` does not lie inside the given buffer: parse the view from that buffer"),
        ));
    }
    Tensor::from_shared_bytes(owner.clone(), start - base, view.data().len(), dtype, view.shape())
}

/// Every tensor of a safetensors file held in `owner`, in file order, without copying.
/// `origin` names the file in errors.
pub fn read_all(owner: Arc<dyn ByteOwner>, origin: &str) -> Result<Vec<(String, Tensor)>> {
    let bytes: &[u8] = (*owner).as_ref();
    let st = SafeTensors::deserialize(bytes).map_err(|e| ComputeError::Format {
        path: origin.to_string(),
        detail: format!("not a valid safetensors file: {e}"),
    })?;
    let mut named: Vec<_> = st.tensors();
    named.sort_by_key(|(_, v)| v.data().as_ptr() as usize);
    named
        .into_iter()
        .map(|(name, view)| {
            let t = tensor_from_view(&owner, &name, &view)
                .map_err(|e| ComputeError::Format { path: origin.to_string(), detail: e.to_string() })?;
            Ok((name, t))
        })
        .collect()
}
