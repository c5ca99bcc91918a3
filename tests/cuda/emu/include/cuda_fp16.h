// CPU emulation (tests/cuda/emu): stands in for the CUDA header of the same name.
#include "../emu_cuda.h"
