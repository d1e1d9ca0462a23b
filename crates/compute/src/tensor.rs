//! [`Tensor`]: a dense, row-major array with a shape and a dtype, stored on the host or on a
//! device. Tensors are values (cheap to clone: storage is shared); ops return new ones. The one
//! in-place op, `ops::copy_into` (KV caches), copies the storage first when another tensor shares
//! it, so a clone never changes under its holder.
//! Copies between host and device are explicit ([`Tensor::to_device`], [`Tensor::to_host`]).

use std::fmt;
use std::sync::Arc;

use crate::backend::{DeviceMemory, GpuBackend};
use crate::device::Device;
use crate::dtype::{DType, Element};
use crate::error::{ComputeError, Result};
use crate::host::{ByteOwner, HostBuffer};

#[derive(Clone)]
pub(crate) enum Storage {
    Host(HostBuffer),
    Gpu { backend: Arc<dyn GpuBackend>, mem: Arc<dyn DeviceMemory> },
}

#[derive(Clone)]
pub struct Tensor {
    pub(crate) storage: Storage,
    shape: Vec<usize>,
    dtype: DType,
}

fn numel_of(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

fn check_len(op: &'static str, shape: &[usize], dtype: DType, bytes: usize) -> Result<usize> {
    let numel = numel_of(shape).ok_or_else(|| {
        ComputeError::shape(op, format!("shape {shape:?} has more elements than fit in memory"))
    })?;
    if numel.checked_mul(dtype.size()) != Some(bytes) {
        return Err(ComputeError::shape(
            op,
            format!(
                "shape {shape:?} of {dtype} needs {numel} elements ({} bytes), but the data holds {bytes} bytes",
                numel.saturating_mul(dtype.size())
            ),
        ));
    }
    Ok(numel)
}

impl Tensor {
    pub(crate) fn from_parts(storage: Storage, shape: Vec<usize>, dtype: DType) -> Tensor {
        Tensor { storage, shape, dtype }
    }

    /// A host tensor holding a copy of `data`.
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_bytes(bytemuck::cast_slice(data), T::DTYPE, shape)
    }

    /// A host tensor holding a copy of `bytes`, read as `dtype` (little-endian).
    pub fn from_bytes(bytes: &[u8], dtype: DType, shape: &[usize]) -> Result<Tensor> {
        check_len("Tensor::from_bytes", shape, dtype, bytes.len())?;
        Ok(Tensor::from_parts(Storage::Host(HostBuffer::copy_from(bytes)), shape.to_vec(), dtype))
    }

    /// A host tensor viewing `len` bytes at `offset` of `owner` without copying them. When the
    /// bytes are not aligned for `dtype` (possible in hand-made files) they are copied instead.
    pub fn from_shared_bytes(
        owner: Arc<dyn ByteOwner>,
        offset: usize,
        len: usize,
        dtype: DType,
        shape: &[usize],
    ) -> Result<Tensor> {
        let total = (*owner).as_ref().len();
        if offset.checked_add(len).is_none_or(|end| end > total) {
            return Err(ComputeError::invalid(
                "Tensor::from_shared_bytes",
                format!(
                    "byte range {offset}..{} lies outside the {total}-byte buffer",
                    offset.saturating_add(len)
                ),
            ));
        }
        check_len("Tensor::from_shared_bytes", shape, dtype, len)?;
        let ptr = (*owner).as_ref()[offset..].as_ptr() as usize;
        let buffer = if ptr.is_multiple_of(dtype.size()) {
            HostBuffer::Shared { owner, offset, len }
        } else {
            HostBuffer::copy_from(&(*owner).as_ref()[offset..offset + len])
        };
        Ok(Tensor::from_parts(Storage::Host(buffer), shape.to_vec(), dtype))
    }

    /// A zero-filled tensor on `device`.
    pub fn zeros(shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        let bytes = numel_of(shape).and_then(|n| n.checked_mul(dtype.size())).ok_or_else(|| {
            ComputeError::shape(
                "Tensor::zeros",
                format!("shape {shape:?} of {dtype} has more bytes than fit in memory"),
            )
        })?;
        let host = Tensor::from_parts(Storage::Host(HostBuffer::build(bytes, |_| {})), shape.to_vec(), dtype);
        host.to_device(device)
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn size_bytes(&self) -> usize {
        self.numel() * self.dtype.size()
    }
    /// Size of the last dimension (1 for a scalar).
    pub fn last_dim(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// The device the data lives on.
    pub fn device(&self) -> Device {
        match &self.storage {
            Storage::Host(_) => Device::Cpu,
            Storage::Gpu { backend, .. } => Device::Gpu(backend.clone()),
        }
    }

    pub fn is_host(&self) -> bool {
        matches!(self.storage, Storage::Host(_))
    }

    /// Whether the host bytes are borrowed from another owner (zero-copy construction).
    pub fn is_shared_host_view(&self) -> bool {
        matches!(&self.storage, Storage::Host(b) if b.is_shared())
    }

    /// The same data with another shape of the same number of elements.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel_of(shape) != Some(self.numel()) {
            return Err(ComputeError::shape(
                "reshape",
                format!("cannot view {:?} ({} elements) as {shape:?}", self.shape, self.numel()),
            ));
        }
        Ok(Tensor { storage: self.storage.clone(), shape: shape.to_vec(), dtype: self.dtype })
    }

    /// A copy on `device` (the same tensor, shared, when it already lives there).
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        match (&self.storage, device) {
            (Storage::Host(_), Device::Cpu) => Ok(self.clone()),
            (Storage::Gpu { backend, .. }, Device::Gpu(target)) if same_backend(backend, target) => {
                Ok(self.clone())
            }
            (Storage::Host(buf), Device::Gpu(target)) => {
                let mem = target.upload(buf.bytes())?;
                Ok(Tensor::from_parts(
                    Storage::Gpu { backend: target.clone(), mem },
                    self.shape.clone(),
                    self.dtype,
                ))
            }
            (Storage::Gpu { .. }, _) => self.to_host()?.to_device(device),
        }
    }

    /// A copy in host memory.
    pub fn to_host(&self) -> Result<Tensor> {
        match &self.storage {
            Storage::Host(_) => Ok(self.clone()),
            Storage::Gpu { backend, mem } => {
                let len = self.size_bytes();
                let mut err = None;
                let buf = HostBuffer::build(len, |dst| {
                    if let Err(e) = backend.download(mem.as_ref(), dst) {
                        err = Some(e);
                    }
                });
                match err {
                    Some(e) => Err(e),
                    None => Ok(Tensor::from_parts(Storage::Host(buf), self.shape.clone(), self.dtype)),
                }
            }
        }
    }

    /// The host bytes, when the tensor is on the host.
    pub fn host_bytes(&self) -> Option<&[u8]> {
        match &self.storage {
            Storage::Host(b) => Some(b.bytes()),
            Storage::Gpu { .. } => None,
        }
    }

    /// The elements as a slice, without copying. The tensor must be on the host and of type `T`.
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        if T::DTYPE != self.dtype {
            return Err(ComputeError::dtype(
                "Tensor::as_slice",
                format!("tensor {:?} is {}, asked for {}", self.shape, self.dtype, T::DTYPE),
            ));
        }
        let bytes = self.host_bytes().ok_or_else(|| ComputeError::Device {
            op: "Tensor::as_slice",
            detail: format!("tensor {:?} is on {}", self.shape, self.device()),
        })?;
        bytemuck::try_cast_slice(bytes)
            .map_err(|e| ComputeError::invalid("Tensor::as_slice", format!("cannot view bytes: {e}")))
    }

    /// The elements copied into a `Vec<T>` (downloaded first when on a device).
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        let host = self.to_host()?;
        Ok(host.as_slice::<T>()?.to_vec())
    }

    /// The elements converted to f32, whatever the dtype.
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        let host = self.to_host()?;
        let bytes = host.host_bytes().expect("host tensor");
        Ok(crate::cpu::cast::bytes_to_f32(bytes, self.dtype))
    }

    /// The host bytes, writable (copied first when the storage is shared: see
    /// [`HostBuffer::bytes_mut`]); `None` on a device.
    pub(crate) fn host_bytes_mut(&mut self) -> Option<&mut [u8]> {
        match &mut self.storage {
            Storage::Host(b) => Some(b.bytes_mut()),
            Storage::Gpu { .. } => None,
        }
    }

    /// The device address of the data, writable: when another tensor shares this device
    /// allocation, the data is first copied into a fresh one of its own (copy-on-write, as on the
    /// host). `None` on the host.
    pub(crate) fn device_addr_mut(&mut self) -> Result<Option<u64>> {
        let Storage::Gpu { backend, mem } = &mut self.storage else { return Ok(None) };
        if Arc::strong_count(mem) > 1 {
            let fresh = backend.alloc(mem.len())?;
            backend.copy(mem.addr(), fresh.addr(), mem.len())?;
            *mem = fresh;
        }
        Ok(Some(mem.addr()))
    }

    /// The device address of the data, when the tensor lives on a device.
    pub(crate) fn device_addr(&self) -> Option<u64> {
        match &self.storage {
            Storage::Gpu { mem, .. } => Some(mem.addr()),
            Storage::Host(_) => None,
        }
    }
}

pub(crate) fn same_backend(a: &Arc<dyn GpuBackend>, b: &Arc<dyn GpuBackend>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor({:?}, {}, {})", self.shape, self.dtype, self.device())
    }
}
