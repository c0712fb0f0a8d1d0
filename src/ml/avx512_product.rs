//! The portable product on hosts with AVX-512: the same sums as
//! `matrixmultiply`'s AVX2+FMA kernel, term for term, at twice the width.
//!
//! The `portable` profile's bytes are those of `matrixmultiply::sgemm` with
//! its AVX2+FMA kernel (`ml::matmul`). Every element of its product is
//! computed the same way, whatever the host:
//!
//! - k is split into blocks of [`KC`] = 256 (its `S_KC`, fixed when it is
//!   compiled: build.rs refuses an override), in order;
//! - within a block, one chain of fused multiply-adds from +0:
//!   `s = fma(a[i,k], b[k,j], s)` for k ascending;
//! - the first block writes `c = s + 0` (its epilogue is `fma(1, s, 0)`; a
//!   chain from +0 never ends at −0, so this is `s` itself), each later
//!   block `c = s + c`.
//!
//! Neither the tile shape, the packing nor the order the tiles are visited in
//! enters any element's arithmetic, so this kernel keeps exactly those steps
//! and differs only in how many elements it computes at once (16 lanes, two
//! vectors across n, 12 rows). Each fused multiply-add is rounded once, in
//! either width, so the bytes are the AVX2 kernel's: the unit tests below
//! compare the two bit for bit over shapes, strides, block and tile edges,
//! and the golden digests hold the whole micro study to them.
//!
//! It runs only where the host has AVX-512F ([`available`]); elsewhere the
//! portable product is `matrixmultiply`'s, as before.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// The k block: `matrixmultiply`'s `S_KC` for f32. Changing it changes bytes.
pub const KC: usize = 256;
/// Rows of a tile (broadcast from packed A).
const MR: usize = 12;
/// Columns of a tile: two 16-lane vectors of packed B.
const NR: usize = 32;
/// Rows of A packed at once (a multiple of MR): about 96 KiB, in L2.
const MC: usize = 8 * MR;
/// Columns of B packed at once: 1 MiB of a k block.
const NC: usize = 1024;

/// Whether this host runs the AVX-512 kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// c[m, n] = a[m, k] · b[k, n], strides in elements, c written (not
/// accumulated into), with the bytes of `matrixmultiply::sgemm(m, k, n, 1.0,
/// a, .., b, .., 0.0, c, ..)` under its AVX2+FMA kernel.
///
/// # Safety
/// The host has AVX-512F ([`available`]); `a`, `b` and `c` address matrices
/// of these sizes and strides; `c` does not overlap `a` or `b`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    (rsa, csa): (isize, isize),
    b: *const f32,
    (rsb, csb): (isize, isize),
    c: *mut f32,
    (rsc, csc): (isize, isize),
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                *c.offset(i as isize * rsc + j as isize * csc) = 0.0;
            }
        }
        return;
    }
    // Packing buffers sized to this product and kept per thread: a step
    // makes hundreds of small products, and a fresh megabyte for each (zeroed,
    // page-faulted) costs more than the products themselves.
    PACKED.with(|bufs| {
        let (packed_a, packed_b) = &mut *bufs.borrow_mut();
        let (a_len, b_len) = (MC.min(m).next_multiple_of(MR) * KC.min(k), KC.min(k) * NC.min(n).next_multiple_of(NR));
        if packed_a.len() < a_len {
            packed_a.resize(a_len, 0.0);
        }
        if packed_b.len() < b_len {
            packed_b.resize(b_len, 0.0);
        }
        blocks(m, k, n, (a, rsa, csa), (b, rsb, csb), (c, rsc, csc), packed_a, packed_b);
    });
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// (packed A, packed B) of this thread's last products.
    static PACKED: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// The product block by block: for each n block, each k block in order
/// (what fixes every element's sums), each m block.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn blocks(
    m: usize,
    k: usize,
    n: usize,
    (a, rsa, csa): (*const f32, isize, isize),
    (b, rsb, csb): (*const f32, isize, isize),
    (c, rsc, csc): (*mut f32, isize, isize),
    packed_a: &mut [f32],
    packed_b: &mut [f32],
) {
    for j0 in (0..n).step_by(NC) {
        let nc = NC.min(n - j0);
        for (block, p0) in (0..k).step_by(KC).enumerate() {
            let kc = KC.min(k - p0);
            pack_b(packed_b, kc, nc, b.offset(p0 as isize * rsb + j0 as isize * csb), rsb, csb);
            for i0 in (0..m).step_by(MC) {
                let mc = MC.min(m - i0);
                pack_a(packed_a, mc, kc, a.offset(i0 as isize * rsa + p0 as isize * csa), rsa, csa);
                let tile = Tile { c: c.offset(i0 as isize * rsc + j0 as isize * csc), rsc, csc, first: block == 0 };
                block_product(packed_a, packed_b, mc, nc, kc, &tile);
            }
        }
    }
}

/// Where a block's tiles go in C, and whether this is the first k block.
#[cfg(target_arch = "x86_64")]
struct Tile {
    c: *mut f32,
    rsc: isize,
    csc: isize,
    first: bool,
}

/// Every tile of one (mc × kc) · (kc × nc) block: B's micro-panel outside,
/// so it stays in L1 while A's panels stream past it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_product(packed_a: &[f32], packed_b: &[f32], mc: usize, nc: usize, kc: usize, t: &Tile) {
    for jr in (0..nc).step_by(NR) {
        let cols = NR.min(nc - jr);
        let bp = packed_b.as_ptr().add(jr * kc);
        for ir in (0..mc).step_by(MR) {
            let rows = MR.min(mc - ir);
            let ap = packed_a.as_ptr().add(ir * kc);
            let acc = kernel(kc, ap, bp);
            let c = t.c.offset(ir as isize * t.rsc + jr as isize * t.csc);
            if rows == MR && cols == NR && t.csc == 1 {
                store_full(&acc, c, t.rsc, t.first);
            } else {
                store_part(&acc, c, (t.rsc, t.csc), rows, cols, t.first);
            }
        }
    }
}

/// One tile's k-block sums: for each of its MR × NR elements, the chain of
/// fused multiply-adds from +0 over k.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn kernel(kc: usize, ap: *const f32, bp: *const f32) -> [__m512; 2 * MR] {
    let mut acc = [_mm512_setzero_ps(); 2 * MR];
    for kk in 0..kc {
        let b0 = _mm512_loadu_ps(bp.add(kk * NR));
        let b1 = _mm512_loadu_ps(bp.add(kk * NR + 16));
        let a = ap.add(kk * MR);
        // Unrolled by the compiler: MR is a constant.
        for r in 0..MR {
            let ar = _mm512_set1_ps(*a.add(r));
            acc[2 * r] = _mm512_fmadd_ps(ar, b0, acc[2 * r]);
            acc[2 * r + 1] = _mm512_fmadd_ps(ar, b1, acc[2 * r + 1]);
        }
    }
    acc
}

/// A whole tile into a C whose rows are contiguous: `s + 0` in the first
/// block, `s + c` after.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store_full(acc: &[__m512; 2 * MR], c: *mut f32, rsc: isize, first: bool) {
    for r in 0..MR {
        let row = c.offset(r as isize * rsc);
        let (lo, hi) = (row, row.add(16));
        let (was_lo, was_hi) =
            if first { (_mm512_setzero_ps(), _mm512_setzero_ps()) } else { (_mm512_loadu_ps(lo), _mm512_loadu_ps(hi)) };
        _mm512_storeu_ps(lo, _mm512_add_ps(acc[2 * r], was_lo));
        _mm512_storeu_ps(hi, _mm512_add_ps(acc[2 * r + 1], was_hi));
    }
}

/// A tile at an edge, or into a C with strided rows: element by element,
/// the same two sums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn store_part(
    acc: &[__m512; 2 * MR],
    c: *mut f32,
    (rsc, csc): (isize, isize),
    rows: usize,
    cols: usize,
    first: bool,
) {
    let mut sums = [0f32; MR * NR];
    for (r, v) in acc.iter().enumerate() {
        _mm512_storeu_ps(sums.as_mut_ptr().add(r * 16), *v);
    }
    for r in 0..rows {
        for j in 0..cols {
            let s = sums[r * NR + j];
            let at = c.offset(r as isize * rsc + j as isize * csc);
            *at = if first { s + 0.0 } else { s + *at };
        }
    }
}

/// B's kc × nc block as micro-panels of NR columns, k by k, zero past n.
#[cfg(target_arch = "x86_64")]
unsafe fn pack_b(out: &mut [f32], kc: usize, nc: usize, b: *const f32, rsb: isize, csb: isize) {
    for (panel, j0) in (0..nc).step_by(NR).enumerate() {
        let cols = NR.min(nc - j0);
        let dst = &mut out[panel * kc * NR..(panel + 1) * kc * NR];
        for kk in 0..kc {
            let row = &mut dst[kk * NR..(kk + 1) * NR];
            let src = b.offset(kk as isize * rsb + j0 as isize * csb);
            if csb == 1 {
                row[..cols].copy_from_slice(std::slice::from_raw_parts(src, cols));
            } else {
                for (j, x) in row[..cols].iter_mut().enumerate() {
                    *x = *src.offset(j as isize * csb);
                }
            }
            row[cols..].fill(0.0);
        }
    }
}

/// A's mc × kc block as micro-panels of MR rows, k by k, zero past m.
#[cfg(target_arch = "x86_64")]
unsafe fn pack_a(out: &mut [f32], mc: usize, kc: usize, a: *const f32, rsa: isize, csa: isize) {
    for (panel, i0) in (0..mc).step_by(MR).enumerate() {
        let rows = MR.min(mc - i0);
        let dst = &mut out[panel * kc * MR..(panel + 1) * kc * MR];
        for r in 0..MR {
            if r >= rows {
                for kk in 0..kc {
                    dst[kk * MR + r] = 0.0;
                }
                continue;
            }
            let src = a.offset((i0 + r) as isize * rsa);
            for kk in 0..kc {
                dst[kk * MR + r] = *src.offset(kk as isize * csa);
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use rand::{Rng, SeedableRng};

    /// A matrix of `rows × cols` in a buffer with the given strides (a
    /// leading dimension past the matrix when `pad`), values over many
    /// magnitudes with exact and signed zeros among them.
    fn matrix(
        rng: &mut rand_chacha::ChaCha8Rng,
        rows: usize,
        cols: usize,
        by_rows: bool,
        pad: usize,
    ) -> (Vec<f32>, isize, isize) {
        let (rs, cs) = if by_rows { ((cols + pad) as isize, 1) } else { (1, (rows + pad) as isize) };
        let len = if by_rows { rows * (cols + pad) } else { cols * (rows + pad) };
        let mut v = vec![f32::NAN; len.max(1)];
        for i in 0..rows {
            for j in 0..cols {
                let x = match rng.gen_range(0..20) {
                    0 => 0.0,
                    1 => -0.0,
                    _ => rng.gen_range(-1.0f32..1.0) * 2f32.powi(rng.gen_range(-12..12)),
                };
                v[i * rs as usize + j * cs as usize] = x;
            }
        }
        (v, rs, cs)
    }

    /// Both kernels on one product; C's stride pattern as given.
    fn both(m: usize, k: usize, n: usize, layout: [bool; 3], pad: usize, seed: u64) -> (Vec<u32>, Vec<u32>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (a, rsa, csa) = matrix(&mut rng, m, k, layout[0], pad);
        let (b, rsb, csb) = matrix(&mut rng, k, n, layout[1], pad);
        let (c0, rsc, csc) = matrix(&mut rng, m, n, layout[2], pad);
        let (mut wide, mut narrow) = (c0.clone(), c0);
        // SAFETY: the buffers hold matrices of these sizes and strides.
        unsafe {
            super::sgemm(m, k, n, a.as_ptr(), (rsa, csa), b.as_ptr(), (rsb, csb), wide.as_mut_ptr(), (rsc, csc));
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                rsa,
                csa,
                b.as_ptr(),
                rsb,
                csb,
                0.0,
                narrow.as_mut_ptr(),
                rsc,
                csc,
            );
        }
        (wide.iter().map(|x| x.to_bits()).collect(), narrow.iter().map(|x| x.to_bits()).collect())
    }

    /// Bit for bit the AVX2 kernel's product (the `portable` profile's
    /// bytes), at every tile and block edge (the k block is what a mistake
    /// here would most likely break: a block of 128 makes hundreds of
    /// elements differ in the first case): k across one, two and three
    /// blocks of 256, m and n off the 12 × 32 tile and the 96 × 1024 block,
    /// A, B and C by rows or by columns, with and without padding.
    #[test]
    fn the_wide_kernel_computes_the_avx2_kernels_bytes() {
        if !super::available() {
            eprintln!("SKIPPED: this host has no AVX-512F; the portable product runs the AVX2 kernel here");
            return;
        }
        let mut seed = 0;
        for &(m, k, n) in &[
            (1, 1, 1),
            (12, 256, 32),
            (13, 257, 33),
            (11, 255, 31),
            (97, 512, 64),
            (24, 700, 1030),
            (200, 129, 70),
            (5, 3, 1500),
            (96, 1, 1024),
        ] {
            for layout in [
                [true, true, true],
                [true, false, true],
                [false, true, true],
                [true, true, false],
                [false, false, false],
            ] {
                for pad in [0, 3] {
                    seed += 1;
                    let (wide, narrow) = both(m, k, n, layout, pad, seed);
                    let differ = wide.iter().zip(&narrow).filter(|(x, y)| x != y).count();
                    assert_eq!(differ, 0, "{differ} elements differ at m={m} k={k} n={n} layout={layout:?} pad={pad}");
                }
            }
        }
    }

    /// A product with no terms is zero, as `matrixmultiply`'s is.
    #[test]
    fn an_empty_sum_is_positive_zero() {
        if !super::available() {
            eprintln!("SKIPPED: this host has no AVX-512F");
            return;
        }
        let (wide, narrow) = both(4, 0, 5, [true, true, true], 0, 7);
        assert_eq!(wide, narrow);
    }
}
