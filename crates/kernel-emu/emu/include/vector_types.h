// vector_types.h under RAGTUNE_EMU: everything it declares is in emu/cuda_emu.h (force-included), so a
// kernel that includes it directly compiles unchanged.
#pragma once
