"""CuPy GroupSort kernels, bit for bit with the array-API core [GS-7, GS-8].

Every entry is turned into a 64-bit (float32) or 128-bit (float64) *item* whose unsigned order
is the core's stable order, and which still holds every bit of the entry:

* high word: the IEEE bits mapped so that unsigned order is numeric order (negatives inverted,
  positives with the sign bit set), with ``-0`` and ``+0`` given the same key and every NaN the
  largest key (NaN sorts last, like NumPy's and CuPy's sorts);
* low word: the position ``j`` of the entry in its group, above the bits the key lost (the sign
  of a zero, the sign and payload of a NaN).

Equal keys are thus ordered by position, which is exactly the stable order, and sorting items
needs one unsigned comparison per compare-exchange (float32) with no tie logic; the output
entry and its permutation index are decoded from the item. Since the order of items is total,
any sorting network gives the stable result.

Kernels:

* ``k <= 32``: one thread per group, a bitonic network over ``P = 2^ceil(log2 k)`` items held
  in registers (the ``P - k`` padding items are all-ones, above every real item). Groups may
  run along any axis of a C-contiguous array: the element ``j`` of group ``g`` is at
  ``(o G + g) k inner + j inner + i``, so consecutive threads read consecutive entries when
  ``inner > 1``; along the last axis with ``k = P`` the group is loaded and stored with 8- or
  16-byte vector accesses. (Staging the groups through shared memory for fully coalesced
  accesses was measured slower on an H200 at k = 8..32: the network, not the loads, bounds
  those sizes; see benchmarks/README.md.)
* ``32 < k <= 4096`` (float32; 2048 for float64): one block per group, bitonic sort in shared
  memory of items holding the key and the position only (the position needs up to 12 bits,
  which the float32 item has no room for next to the lost bits); each output entry is re-read
  from the input at its position. Last axis only: other axes are first moved there (one copy).
* backward (``x_bar = P^T y_bar``, a scatter) and JVP (``P x_dot``, a gather): one thread per
  element.

The permutation residual is stored compactly (``uint8`` for ``k <= 256``, ``uint16`` above) in
the core's layout ``(..., n // k, k)``; the core's backward and JVP accept it as is.

Input layouts: C-contiguous arrays are used in place; a 2-d F-contiguous array (a transposed
C array) is used through its C-contiguous transpose, free; any other layout is copied to C
order first (one extra read and write, reported by the benchmarks).
"""
from __future__ import annotations

import functools

import cupy
import numpy as np

__all__ = ["group_sort", "group_sort_fwd", "group_sort_bwd", "group_sort_jvp", "MAX_SMEM_K"]

SMALL_K = 32
# Largest group sorted in shared memory: P items of 8 (float32) or 16 (float64) bytes in 32 KiB.
MAX_SMEM_K = {np.dtype(np.float32): 4096, np.dtype(np.float64): 2048}
_THREADS = 256

_SOURCE = r"""
typedef unsigned long long u64;
typedef unsigned int u32;

// ---- items: unsigned order == the core's stable order; decodable to the exact input bits ----
struct Item64 { u64 hi, lo; };

__device__ __forceinline__ u64 make_item(float v, u32 j) {
    u32 b = __float_as_uint(v), key, extra = 0u;
    if ((b & 0x7FFFFFFFu) > 0x7F800000u) {          // NaN: largest key, keep sign + payload
        key = 0xFFFFFFFFu; extra = (b & 0x7FFFFFu) | ((b >> 31) << 23);
    } else if ((b & 0x7FFFFFFFu) == 0u) {           // +-0: one key, keep the sign
        key = 0x80000000u; extra = b >> 31;
    } else {
        key = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    }
    return ((u64)key << 32) | ((u64)j << 24) | (u64)extra;
}
__device__ __forceinline__ float item_value(u64 it) {
    u32 key = (u32)(it >> 32), extra = (u32)it & 0xFFFFFFu, b;
    if (key == 0xFFFFFFFFu) b = 0x7F800000u | (extra & 0x7FFFFFu) | ((extra >> 23) << 31);
    else if (key == 0x80000000u) b = extra << 31;
    else b = (key & 0x80000000u) ? (key & 0x7FFFFFFFu) : ~key;
    return __uint_as_float(b);
}
__device__ __forceinline__ u32 item_index(u64 it) { return ((u32)it) >> 24; }
// Wide-position items (shared-memory kernel): key and position only; the value is re-read.
__device__ __forceinline__ u64 make_wide(float v, u32 j) {
    return (make_item(v, 0u) & 0xFFFFFFFF00000000ull) | (u64)j;
}
__device__ __forceinline__ u32 wide_index(u64 it) { return (u32)it; }
__device__ __forceinline__ bool item_less(u64 a, u64 b) { return a < b; }
__device__ __forceinline__ void pad_item(u64 &it) { it = ~0ull; }

__device__ __forceinline__ Item64 make_item(double v, u32 j) {
    u64 b = (u64)__double_as_longlong(v), key, extra = 0ull;
    const u64 SIGN = 0x8000000000000000ull, ABS = 0x7FFFFFFFFFFFFFFFull;
    if ((b & ABS) > 0x7FF0000000000000ull) {
        key = ~0ull; extra = (b & 0xFFFFFFFFFFFFFull) | ((b >> 63) << 52);
    } else if ((b & ABS) == 0ull) {
        key = SIGN; extra = b >> 63;
    } else {
        key = (b & SIGN) ? ~b : (b | SIGN);
    }
    Item64 it; it.hi = key; it.lo = ((u64)j << 56) | extra; return it;
}
__device__ __forceinline__ double item_value(Item64 it) {
    const u64 SIGN = 0x8000000000000000ull;
    u64 key = it.hi, extra = it.lo & 0x1FFFFFFFFFFFFFull, b;
    if (key == ~0ull) b = 0x7FF0000000000000ull | (extra & 0xFFFFFFFFFFFFFull) | ((extra >> 52) << 63);
    else if (key == SIGN) b = extra << 63;
    else b = (key & SIGN) ? (key & ~SIGN) : ~key;
    return __longlong_as_double((long long)b);
}
__device__ __forceinline__ u32 item_index(Item64 it) { return (u32)(it.lo >> 56); }
__device__ __forceinline__ Item64 make_wide(double v, u32 j) {
    Item64 it = make_item(v, 0u); it.lo = (u64)j; return it;
}
__device__ __forceinline__ u32 wide_index(Item64 it) { return (u32)it.lo; }
__device__ __forceinline__ bool item_less(Item64 a, Item64 b) {
    return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo);
}
__device__ __forceinline__ void pad_item(Item64 &it) { it.hi = ~0ull; it.lo = ~0ull; }

template <typename T> struct ItemOf;
template <> struct ItemOf<float> { typedef u64 type; };
template <> struct ItemOf<double> { typedef Item64 type; };

template <typename I>
__device__ __forceinline__ void cmp_swap(I &a, I &b) {   // a <- min, b <- max
    bool s = item_less(b, a);
    I lo = s ? b : a, hi = s ? a : b;
    a = lo; b = hi;
}

// Bitonic sorting network on P register items (indices compile-time after unrolling).
template <typename I, int P>
__device__ __forceinline__ void bitonic(I (&v)[P]) {
    #pragma unroll
    for (int size = 2; size <= P; size <<= 1) {
        #pragma unroll
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            #pragma unroll
            for (int a = 0; a < P; ++a) {
                int b = a ^ stride;
                if (b > a) {
                    if ((a & size) == 0) cmp_swap(v[a], v[b]);
                    else cmp_swap(v[b], v[a]);
                }
            }
        }
    }
}

// ---- k <= 32: one thread per group, bitonic network in registers ----
// Thread t handles group g of row o and inner index i (t = (o G + g) inner + i); element j of
// its group is at base + j * inner with base = (o G + g) K inner + i (since n = G K).
// VEC: inner == 1, K == P and the group is 16-byte (or, for 8-byte groups, 8-byte) aligned.
template <typename T, int P, bool WITH_PERM, bool VEC>
__global__ void gs_small(const T* __restrict__ x, T* __restrict__ y,
                         unsigned char* __restrict__ perm,
                         long long n_threads, int K, long long inner, long long G) {
    typedef typename ItemOf<T>::type I;
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n_threads) return;
    long long og = t, i = 0;
    const bool narrow = n_threads * K < 2147483647LL;   // 32-bit divisions are ~4x cheaper
    if (inner != 1) {
        if (narrow) { og = (unsigned)t / (unsigned)inner; }
        else { og = t / inner; }
        i = t - og * inner;
    }
    long long base = og * K * inner + i;
    I v[P];
    if (VEC) {
        __align__(16) T vals[P];
        if (P * sizeof(T) >= 16) {
            const uint4* src = reinterpret_cast<const uint4*>(x + base);
            uint4* dst = reinterpret_cast<uint4*>(vals);
            #pragma unroll
            for (int c = 0; c < (int)(P * sizeof(T) / 16); ++c) dst[c] = src[c];
        } else {
            *reinterpret_cast<uint2*>(vals) = *reinterpret_cast<const uint2*>(x + base);
        }
        #pragma unroll
        for (int j = 0; j < P; ++j) v[j] = make_item(vals[j], (u32)j);
    } else {
        #pragma unroll
        for (int j = 0; j < P; ++j) {
            if (j < K) v[j] = make_item(x[base + j * inner], (u32)j);
            else pad_item(v[j]);
        }
    }
    bitonic<I, P>(v);
    if (VEC) {
        __align__(16) T vals[P];
        #pragma unroll
        for (int j = 0; j < P; ++j) vals[j] = item_value(v[j]);
        if (P * sizeof(T) >= 16) {
            uint4* dst = reinterpret_cast<uint4*>(y + base);
            const uint4* src = reinterpret_cast<const uint4*>(vals);
            #pragma unroll
            for (int c = 0; c < (int)(P * sizeof(T) / 16); ++c) dst[c] = src[c];
        } else {
            *reinterpret_cast<uint2*>(y + base) = *reinterpret_cast<const uint2*>(vals);
        }
        if (WITH_PERM) {   // perm layout == input layout here (inner == 1)
            if (P >= 4) {
                #pragma unroll
                for (int c = 0; c < P / 4; ++c) {
                    u32 w = item_index(v[4 * c]) | (item_index(v[4 * c + 1]) << 8)
                          | (item_index(v[4 * c + 2]) << 16) | (item_index(v[4 * c + 3]) << 24);
                    reinterpret_cast<u32*>(perm + base)[c] = w;
                }
            } else {
                *reinterpret_cast<unsigned short*>(perm + base) =
                    (unsigned short)(item_index(v[0]) | (item_index(v[1]) << 8));
            }
        }
    } else {
        // perm in the core's layout (outer, inner, G, K): ((o inner + i) G + g) K + j.
        long long pbase = 0;
        if (WITH_PERM) {
            long long o = narrow ? (long long)((unsigned)og / (unsigned)G) : og / G, g = og - o * G;
            pbase = ((o * inner + i) * G + g) * K;
        }
        #pragma unroll
        for (int j = 0; j < P; ++j) {
            if (j < K) {
                y[base + j * inner] = item_value(v[j]);
                if (WITH_PERM) perm[pbase + j] = (unsigned char)item_index(v[j]);
            }
        }
    }
}

// ---- 32 < k <= MAX: one block per group along the last axis, bitonic sort in shared memory ----
template <typename T, typename PT, bool WITH_PERM>
__global__ void gs_smem(const T* __restrict__ x, T* __restrict__ y, PT* __restrict__ perm,
                        int K, int P) {
    typedef typename ItemOf<T>::type I;
    extern __shared__ unsigned char smem_raw[];
    I* s = reinterpret_cast<I*>(smem_raw);
    long long base = (long long)blockIdx.x * K;
    for (int j = threadIdx.x; j < P; j += blockDim.x) {
        if (j < K) s[j] = make_wide(x[base + j], (u32)j);
        else pad_item(s[j]);
    }
    __syncthreads();
    for (int size = 2; size <= P; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int c = threadIdx.x; c < P / 2; c += blockDim.x) {
                int a = 2 * c - (c & (stride - 1)), b = a + stride;   // stride: a power of 2
                if ((a & size) == 0) cmp_swap(s[a], s[b]);
                else cmp_swap(s[b], s[a]);
            }
            __syncthreads();
        }
    }
    for (int j = threadIdx.x; j < K; j += blockDim.x) {
        u32 src = wide_index(s[j]);
        y[base + j] = x[base + src];
        if (WITH_PERM) perm[base + j] = (PT)src;
    }
}
"""

_PERMUTE_SOURCE = r"""
// One thread per element of y_bar / x_dot (C-contiguous, viewed as (outer, n, inner)); perm in
// the core's layout (outer, inner, G, K). SCATTER: x_bar[... perm[j] ...] = y_bar[... j ...]
// (the VJP P^T y_bar); gather: y_dot[... j ...] = x_dot[... perm[j] ...] (the JVP P x_dot).
template <typename T, typename PT, bool SCATTER>
__global__ void gs_permute(const T* __restrict__ src, const PT* __restrict__ perm,
                           T* __restrict__ dst, long long total, int K, int log2k,
                           long long inner, long long G) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= total) return;
    long long p_addr, j;
    if (inner == 1) {
        j = log2k >= 0 ? (t & (K - 1)) : (t % K);
        p_addr = t;
    } else {
        long long r = t / inner, i = t - r * inner;      // r = o n + g K + j
        long long og = r / K; j = r - og * K;
        long long o = og / G, g = og - o * G;
        p_addr = ((o * inner + i) * G + g) * K + j;
    }
    long long q = t + ((long long)perm[p_addr] - j) * inner;
    if (SCATTER) dst[q] = src[t];
    else dst[t] = src[q];
}
"""


def _pow2(k):
    return max(2, 1 << (k - 1).bit_length())


_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_PERM_TYPES = {np.dtype(np.uint8): "unsigned char", np.dtype(np.uint16): "unsigned short",
               np.dtype(np.int32): "int", np.dtype(np.int64): "long long"}


_SORT_NAMES = [
    *(f"gs_small<{t}, {p}, {perm}, {vec}>" for t in _TYPES.values() for p in (2, 4, 8, 16, 32)
      for perm in ("true", "false") for vec in ("true", "false")),
    *(f"gs_smem<{t}, {pt}, {perm}>" for t in _TYPES.values()
      for pt in ("unsigned char", "unsigned short") for perm in ("true", "false")),
]


@functools.lru_cache(maxsize=None)
def _sort_module():
    """One module, every instantiation (one NVRTC compile, cached on disk by CuPy)."""
    return cupy.RawModule(code=_SOURCE, options=("--std=c++14",), name_expressions=_SORT_NAMES)


@functools.lru_cache(maxsize=None)
def _permute_module():
    names = [f"gs_permute<{t}, {pt}, {s}>" for t in _TYPES.values() for pt in _PERM_TYPES.values()
             for s in ("true", "false")]
    return cupy.RawModule(code=_PERMUTE_SOURCE, options=("--std=c++14",), name_expressions=names)


def _seen(x, axis):
    """``(c, axis_c, transposed)``: a C-contiguous array holding ``x``'s entries and the axis of
    ``c`` that is ``x``'s ``axis`` (``transposed``: ``c = x.T``, free for 2-d F-order input)."""
    if x.flags.c_contiguous:
        return x, axis, False
    if x.ndim == 2 and x.flags.f_contiguous:
        return x.T, 1 - axis, True
    return cupy.ascontiguousarray(x), axis, False


def _geometry(shape, axis, k):
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return outer, inner, shape[axis] // k


def _perm_dtype(k):
    return np.uint8 if k <= 256 else np.uint16


def _supported(x, k):
    return x.dtype in _TYPES and k <= MAX_SMEM_K[x.dtype]


def _sort(x, k, axis, with_perm):
    c, ax, transposed = _seen(x, axis)
    outer, inner, groups = _geometry(c.shape, ax, k)
    if k > SMALL_K and inner != 1:
        # The shared-memory kernel sorts along the last axis: move the axis there (one copy).
        moved = cupy.ascontiguousarray(cupy.moveaxis(c, ax, -1))
        y, perm = _sort(moved, k, moved.ndim - 1, with_perm)
        return cupy.moveaxis(y, -1, ax).T if transposed else cupy.moveaxis(y, -1, ax), perm
    y = cupy.empty(c.shape, dtype=c.dtype)
    perm_shape = (*c.shape[:ax], *c.shape[ax + 1:], groups, k)
    perm = cupy.empty(perm_shape, dtype=_perm_dtype(k)) if with_perm else None
    t, flag = _TYPES[c.dtype], "true" if with_perm else "false"
    perm_arg = perm if with_perm else np.uint64(0)
    if k <= SMALL_K:
        p = _pow2(k)
        width = p * c.itemsize
        vec = (inner == 1 and k == p and width in (8,) + tuple(range(16, 1024, 16))
               and c.data.ptr % min(width, 16) == 0)
        n_threads = outer * groups * inner
        kern = _sort_module().get_function(f"gs_small<{t}, {p}, {flag}, {'true' if vec else 'false'}>")
        kern(((n_threads + _THREADS - 1) // _THREADS,), (_THREADS,),
             (c, y, perm_arg, np.int64(n_threads), np.int32(k), np.int64(inner), np.int64(groups)))
    else:
        p = _pow2(k)
        item = 8 if c.dtype == np.float32 else 16
        pt = "unsigned char" if k <= 256 else "unsigned short"
        kern = _sort_module().get_function(f"gs_smem<{t}, {pt}, {flag}>")
        kern((outer * groups,), (min(p // 2, 1024),), (c, y, perm_arg, np.int32(k), np.int32(p)),
             shared_mem=p * item)
    return (y.T if transposed else y), perm


def group_sort(x, k, axis):
    """Forward without residuals; ``None`` when the kernels do not apply (dtype, large ``k``)."""
    if not _supported(x, k):
        return None
    return _sort(x, k, axis, with_perm=False)[0]


def group_sort_fwd(x, k, axis):
    """``(y, perm)``, perm in the core's layout (``uint8``/``uint16``); ``None`` when no kernel
    applies."""
    if not _supported(x, k):
        return None
    return _sort(x, k, axis, with_perm=True)


def _permute(perm, a, k, axis, scatter):
    if a.dtype not in _TYPES or perm.dtype not in _PERM_TYPES:
        return None
    c, ax, transposed = _seen(a, axis)
    perm = cupy.ascontiguousarray(perm)
    outer, inner, groups = _geometry(c.shape, ax, k)
    out = cupy.empty(c.shape, dtype=c.dtype)
    total = c.size
    log2k = k.bit_length() - 1 if k & (k - 1) == 0 else -1
    kern = _permute_module().get_function(
        f"gs_permute<{_TYPES[c.dtype]}, {_PERM_TYPES[perm.dtype]}, {'true' if scatter else 'false'}>")
    kern(((total + _THREADS - 1) // _THREADS,), (_THREADS,),
         (c, perm, out, np.int64(total), np.int32(k), np.int32(log2k), np.int64(inner), np.int64(groups)))
    return out.T if transposed else out


def group_sort_bwd(perm, y_bar, k, axis):
    """``x_bar = P^T y_bar`` [GS-4] as a scatter; ``None`` for unsupported dtypes."""
    return _permute(perm, y_bar, k, axis, scatter=True)


def group_sort_jvp(perm, x_dot, k, axis):
    """``y_dot = P x_dot`` [GS-4] as a gather; ``None`` for unsupported dtypes."""
    return _permute(perm, x_dot, k, axis, scatter=False)
