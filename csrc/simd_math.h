// Vectorisable math for the per-row kernels.  Included *inside* an ISA
// namespace (fastdl::base, fastdl::avx2) by simd_kernels.inc, so each
// instruction set gets its own copies and no inline function is shared
// between code compiled with and without AVX2 (which would break the
// portable build through the one-definition rule).

#if defined(__GNUC__)
#define FASTDL_MATH_INLINE inline __attribute__((always_inline))  // must inline to vectorise
#else
#define FASTDL_MATH_INLINE inline
#endif

// exp for float that the compiler can vectorise (Cephes expf polynomial,
// ~1 ulp).  exp(-inf) = 0, exp(+large) = inf, exp(NaN) = NaN.
FASTDL_MATH_INLINE float vexp(float x) {
  const float hi = 88.3762626647949f, lo = -87.3365447505531f;
  float xs = x > hi ? hi : x;  // selects only (no branch, no float->int before the clamp): vectorises
  xs = xs < lo ? lo : xs;
  xs = x != x ? 0.0f : xs;
  const float fn = std::floor(xs * 1.44269504088896341f + 0.5f);
  float r = xs - fn * 0.693359375f + fn * 2.12194440e-4f;
  const float z = r * r;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * z + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(fn) + 127) << 23;
  float p2;
  std::memcpy(&p2, &bits, sizeof p2);
  float out = y * p2;
  out = x > hi ? std::numeric_limits<float>::infinity() : out;
  out = x < lo ? 0.0f : out;
  return x != x ? x : out;
}
FASTDL_MATH_INLINE double vexp(double x) { return std::exp(x); }

// tanh for float: a polynomial near 0 (no cancellation), 1 - 2/(e^2x + 1)
// elsewhere (Cephes tanhf), both vectorisable.
FASTDL_MATH_INLINE float vtanh(float x) {
  const float ax = x < 0 ? -x : x;
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float e = vexp(2.0f * ax);
  float big = 1.0f - 2.0f / (e + 1.0f);
  big = x < 0 ? -big : big;
  return ax < 0.625f ? small : big;  // NaN: ax < 0.625 false -> big is NaN
}
inline double vtanh(double x) { return std::tanh(x); }

template <class T>
FASTDL_MATH_INLINE T vsigmoid(T x) { return T(1) / (T(1) + vexp(-x)); }

// Max of a row, vectorised (the simd reduction allows reordering); NaN if
// any entry is NaN.  Must be inlined into a FASTDL_DISPATCH caller.
template <class T>
FASTDL_MATH_INLINE T row_max(const T* __restrict__ x, int64_t n) {
  T m = -std::numeric_limits<T>::infinity();
  int nan = 0;
#pragma omp simd reduction(max : m) reduction(| : nan)
  for (int64_t i = 0; i < n; ++i) {
    m = x[i] > m ? x[i] : m;
    nan |= x[i] != x[i];
  }
  return nan ? std::numeric_limits<T>::quiet_NaN() : m;
}


// ---------------------------------------------------------------- array primitives
// y[i] = scale * exp(x[i] - shift) (y may be null); returns sum_i exp(x[i] - shift).
template <class T>
FASTDL_MATH_INLINE T exp_shift(const T* __restrict__ x, T shift, T scale, T* __restrict__ y, int64_t n) {
  T s = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T e = vexp(x[i] - shift);
    s += e;
    if (y) y[i] = scale * e;
  }
  return s;
}

template <class T> FASTDL_MATH_INLINE void sigmoid_array(const T* __restrict__ x, T* __restrict__ y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = vsigmoid(x[i]);
}

template <class T> FASTDL_MATH_INLINE void tanh_array(const T* __restrict__ x, T* __restrict__ y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = vtanh(x[i]);
}

// The degree-5 polynomials of the vector exponentials below, as c[0] r^5 + ... + c[4] r + 1: e^r on
// |r| <= ln2/2, fitted to the relative error (1.8e-7 in float32, measured; Cephes' degree 7 buys ~1
// ulp that a softmax cannot use), and the same rescaled to 2^r = e^(r ln2) on |r| <= 1/2 (c_k ln2^k).
constexpr float kExpPoly[5] = {8.290238639e-03f, 4.189793859e-02f, 1.666763745e-01f, 4.999914944e-01f, 9.999997067e-01f};
constexpr float kExp2Poly[5] = {1.326460508e-03f, 9.671514854e-03f, 5.550734326e-02f, 2.402224243e-01f, 6.931470037e-01f};

#if defined(__AVX2__) && defined(__FMA__)
FASTDL_MATH_INLINE __m256 poly5_8(__m256 r, const float (&c)[5]) {
  __m256 y = _mm256_set1_ps(c[0]);
  for (int k = 1; k < 5; ++k) y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c[k]));
  return _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f));
}
// The reductions' common end: 2^n from the shifter's sum t (n in its low mantissa bits, so t << 23
// is n << 23), and r and 2^n both zero in a lane below the range, so that the polynomial's half gives
// exactly 0 there (poly(0) * 0).
FASTDL_MATH_INLINE __m256 exp8_reduced(__m256 t, __m256 r, __m256 below, __m256* scale) {
  const __m256i e = _mm256_add_epi32(_mm256_slli_epi32(_mm256_castps_si256(t), 23), _mm256_set1_epi32(127 << 23));
  *scale = _mm256_andnot_ps(below, _mm256_castsi256_ps(e));
  return _mm256_andnot_ps(below, r);
}
// 8 lanes of vexp with AVX2+FMA intrinsics (the compiler would not if-convert
// the scalar version's NaN/overflow selects into blends).
FASTDL_MATH_INLINE __m256 exp8(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365447505531f);
  const __m256 xs = _mm256_min_ps(_mm256_max_ps(x, lo), hi);  // a NaN lane becomes lo here, fixed below
  const __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(xs, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), xs);
  r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
  const __m256 z = _mm256_mul_ps(r, r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, z, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
  __m256 out = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
  out = _mm256_blendv_ps(out, _mm256_set1_ps(std::numeric_limits<float>::infinity()), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
  out = _mm256_blendv_ps(out, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
  return _mm256_blendv_ps(out, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));  // NaN in, NaN out
}

// exp8_nonpos in two halves, for loops that run the first over a chunk of a row, then the second:
// one chain of 40-odd cycles of latency per 8 lanes fills the scheduler with waiting operations
// (the attention rows ran at about 11 cycles per 8 lanes); two chains of about 20 overlap better.
// The first returns r and the scale 2^n (exp8_reduced).
FASTDL_MATH_INLINE __m256 exp8_nonpos_reduce(__m256 x, __m256* scale) {
  const __m256 shifter = _mm256_set1_ps(12582912.0f);
  const __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), shifter);
  const __m256 fx = _mm256_sub_ps(t, shifter);
  __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
  return exp8_reduced(t, r, _mm256_cmp_ps(x, _mm256_set1_ps(-87.3365447505531f), _CMP_LT_OQ), scale);
}
FASTDL_MATH_INLINE __m256 exp8_nonpos_finish(__m256 r, __m256 scale) {
  return _mm256_mul_ps(poly5_8(r, kExpPoly), scale);
}
// exp(x) for x <= 0, -inf or NaN, 8 lanes (the attention rows and the recurrent cells of the AVX2
// build): exp16_nonpos's shifter and polynomial, 2^n built in the exponent field (the shifter leaves
// n in the low mantissa bits of t, so t << 23 is n << 23).  A lane below lo (-inf included) gives
// exactly 0; a NaN lane is not below lo and stays NaN through the polynomial.
FASTDL_MATH_INLINE __m256 exp8_nonpos(__m256 x) {
  __m256 scale;
  const __m256 r = exp8_nonpos_reduce(x, &scale);
  return exp8_nonpos_finish(r, scale);
}
// 2^x for x <= 0, -inf or NaN, in the same two halves: for scores already in base 2 (the attention
// rows of the packed kernels, whose keys carry log2(e) with the scale).  x = n + r with n = round(x)
// by the shifter, r = x - n exact, and kExp2Poly (the same 1.8e-7 relative error): one add where base
// e takes an FMA, and r in one subtraction instead of two FMAs.  A lane below -126 (-inf included)
// gives exactly 0; a NaN lane stays NaN.
FASTDL_MATH_INLINE __m256 exp2_8_nonpos_reduce(__m256 x, __m256* scale) {
  const __m256 shifter = _mm256_set1_ps(12582912.0f);
  const __m256 t = _mm256_add_ps(x, shifter);
  const __m256 r = _mm256_sub_ps(x, _mm256_sub_ps(t, shifter));
  return exp8_reduced(t, r, _mm256_cmp_ps(x, _mm256_set1_ps(-126.0f), _CMP_LT_OQ), scale);
}
FASTDL_MATH_INLINE __m256 exp2_8_nonpos_finish(__m256 r, __m256 scale) {
  return _mm256_mul_ps(poly5_8(r, kExp2Poly), scale);
}
// 1 / d for d >= 1 (finite, or NaN): the 12-bit reciprocal and one Newton step, not a division
FASTDL_MATH_INLINE __m256 recip8(__m256 d) {
  const __m256 r = _mm256_rcp_ps(d);
  return _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0f)));
}

#if defined(__AVX512F__)
// 16 lanes of exp8's polynomial for x clamped to [lo, hi], a NaN passing through (max(lo, NaN) and
// min(hi, NaN) return the NaN): for callers that clamp their arguments themselves (the AVX-512 LSTM cell)
FASTDL_MATH_INLINE __m512 exp16_clamped(__m512 x) {
  const __m512 xs = _mm512_min_ps(_mm512_set1_ps(88.3762626647949f), _mm512_max_ps(_mm512_set1_ps(-87.3365447505531f), x));
  const __m512 fx = _mm512_roundscale_ps(_mm512_fmadd_ps(xs, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f)),
                                         _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), xs);
  r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), r);
  const __m512 z = _mm512_mul_ps(r, r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, z, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, fx);  // y * 2^fx in one instruction
}
// exp8 16 lanes wide: inf above hi, 0 below lo, NaN in NaN out
FASTDL_MATH_INLINE __m512 exp16(__m512 x) {
  __m512 out = exp16_clamped(x);
  out = _mm512_mask_mov_ps(out, _mm512_cmp_ps_mask(x, _mm512_set1_ps(88.3762626647949f), _CMP_GT_OQ),
                           _mm512_set1_ps(std::numeric_limits<float>::infinity()));
  return _mm512_mask_mov_ps(out, _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3365447505531f), _CMP_LT_OQ),
                            _mm512_setzero_ps());
}
FASTDL_MATH_INLINE __m512 poly5_16(__m512 r, const float (&c)[5]) {
  __m512 y = _mm512_set1_ps(c[0]);
  for (int k = 1; k < 5; ++k) y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(c[k]));
  return _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0f));
}
// exp(x) for x <= 0, -inf or NaN, 16 lanes (the attention rows, GELU's erfc): x = n ln2 + r with
// n = round(x / ln2) by the 1.5 * 2^23 shifter (two FMA-port ops, where roundscale takes two on one
// port), kExpPoly, 2^n by scalef.  No clamp: a lane below lo (-inf included) may compute garbage but
// the final mask zeroes it, and a NaN lane (unordered, so not below lo) stays NaN.
FASTDL_MATH_INLINE __m512 exp16_nonpos(__m512 x) {
  const __m512 shifter = _mm512_set1_ps(12582912.0f);
  const __m512 fx = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), shifter), shifter);
  __m512 r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), r);
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3365447505531f), _CMP_NLT_UQ),
                             _mm512_scalef_ps(poly5_16(r, kExpPoly), fx));
}
// 2^x for x <= 0, -inf or NaN, 16 lanes: exp2_8_nonpos_reduce's reduction, kExp2Poly, 2^n by
// scalef; a lane below -126 (-inf included) gives exactly 0, a NaN lane stays NaN.
FASTDL_MATH_INLINE __m512 exp2_16_nonpos(__m512 x) {
  const __m512 shifter = _mm512_set1_ps(12582912.0f);
  const __m512 fx = _mm512_sub_ps(_mm512_add_ps(x, shifter), shifter);
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-126.0f), _CMP_NLT_UQ),
                             _mm512_scalef_ps(poly5_16(_mm512_sub_ps(x, fx), kExp2Poly), fx));
}
// tanh's odd polynomial for |x| < 0.625 (no cancellation there), and a magnitude given x's sign
FASTDL_MATH_INLINE __m512 tanh_small16(__m512 v) {
  const __m512 z = _mm512_mul_ps(v, v);
  __m512 p = _mm512_set1_ps(-5.70498872745e-3f);
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(2.06390887954e-2f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-5.37397155531e-2f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.33314422036e-1f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.33332819422e-1f));
  return _mm512_fmadd_ps(_mm512_mul_ps(p, z), v, v);
}
FASTDL_MATH_INLINE __m512 abs16(__m512 v) {
  return _mm512_castsi512_ps(_mm512_andnot_si512(_mm512_set1_epi32(int(0x80000000u)), _mm512_castps_si512(v)));
}
FASTDL_MATH_INLINE __m512 with_sign16(__m512 mag, __m512 v) {
  const __m512i sbit = _mm512_set1_epi32(int(0x80000000u));
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(mag), _mm512_and_si512(sbit, _mm512_castps_si512(v))));
}
// sigmoid and tanh 16 lanes wide (the AVX-512 LSTM cell, SiLU and the tanh GELU): arguments clamped
// so that exp stays finite, and 1 / d is a reciprocal, not a division.
FASTDL_MATH_INLINE __m512 neg16(__m512 v) { return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), _mm512_set1_epi32(int(0x80000000u)))); }
// 1 / d for d >= 1 (finite, or NaN): the 14-bit reciprocal and one Newton step, not a division
FASTDL_MATH_INLINE __m512 recip16(__m512 d) {
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}
// exp(-v) for sigmoid: -v clamped to 88 from above, so 1 + e stays finite (sigmoid(-88) ~ 0 either way)
FASTDL_MATH_INLINE __m512 sigmoid16(__m512 v) {
  const __m512 e = exp16_clamped(_mm512_min_ps(_mm512_set1_ps(88.0f), neg16(v)));  // min(c, NaN) is NaN
  return recip16(_mm512_add_ps(_mm512_set1_ps(1.0f), e));
}
FASTDL_MATH_INLINE __m512 tanh16(__m512 v) {
  const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f), ax = abs16(v);
  // 1 - 2 / (e^{2|x|} + 1), |x| clamped to 10 so e stays finite (tanh(x) rounds to 1 in float32 from
  // 9.01, and this formula gives exactly 1 at 10; at 9 it gave 1 - 2^-24)
  const __m512 e = exp16_clamped(_mm512_mul_ps(two, _mm512_min_ps(_mm512_set1_ps(10.0f), ax)));
  const __m512 big = with_sign16(_mm512_fnmadd_ps(two, recip16(_mm512_add_ps(e, one)), one), v);
  return _mm512_mask_mov_ps(big, _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.625f), _CMP_LT_OQ), tanh_small16(v));
}
#endif

FASTDL_MATH_INLINE float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <>
FASTDL_MATH_INLINE float exp_shift<float>(const float* __restrict__ x, float shift, float scale, float* __restrict__ y,
                                          int64_t n) {
  const __m256 vs = _mm256_set1_ps(shift), vc = _mm256_set1_ps(scale);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
#if defined(__AVX512F__)
  {  // 32 lanes a step in the AVX-512 build (its 32 registers hold exp16's constants: the 16 of AVX2 spill
     // them and the sums to the stack, 2.8 cycles an element for a softmax row of 1000)
    const __m512 ws = _mm512_set1_ps(shift), wc = _mm512_set1_ps(scale);
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    for (; i + 32 <= n; i += 32) {
      const __m512 e0 = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), ws));
      const __m512 e1 = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), ws));
      s0 = _mm512_add_ps(s0, e0);
      s1 = _mm512_add_ps(s1, e1);
      if (y) {
        _mm512_storeu_ps(y + i, _mm512_mul_ps(wc, e0));
        _mm512_storeu_ps(y + i + 16, _mm512_mul_ps(wc, e1));
      }
    }
    const __m512 t = _mm512_add_ps(s0, s1);
    acc0 = _mm256_add_ps(_mm512_castps512_ps256(t), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1)));
  }
#endif
  for (; i + 16 <= n; i += 16) {
    const __m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vs));
    const __m256 e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vs));
    acc0 = _mm256_add_ps(acc0, e0);
    acc1 = _mm256_add_ps(acc1, e1);
    if (y) {
      _mm256_storeu_ps(y + i, _mm256_mul_ps(vc, e0));
      _mm256_storeu_ps(y + i + 8, _mm256_mul_ps(vc, e1));
    }
  }
  float s = hsum8(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) {
    const float e = vexp(x[i] - shift);
    s += e;
    if (y) y[i] = scale * e;
  }
  return s;
}

template <>
FASTDL_MATH_INLINE void sigmoid_array<float>(const float* __restrict__ x, float* __restrict__ y, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) {  // the same steps 16 lanes at a time
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_loadu_ps(x + i)));
    _mm512_storeu_ps(y + i, _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
  }
#endif
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_xor_ps(_mm256_loadu_ps(x + i), sign));  // exp(-x)
    _mm256_storeu_ps(y + i, _mm256_div_ps(one, _mm256_add_ps(one, e)));
  }
  for (; i < n; ++i) y[i] = vsigmoid(x[i]);
}

template <>
FASTDL_MATH_INLINE void tanh_array<float>(const float* __restrict__ x, float* __restrict__ y, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f), sign = _mm256_set1_ps(-0.0f);
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) {  // the same steps 16 lanes at a time
    const __m512 v = _mm512_loadu_ps(x + i), ax = abs16(v);
    const __m512 e = exp16(_mm512_add_ps(ax, ax));
    const __m512 big = with_sign16(
        _mm512_sub_ps(_mm512_set1_ps(1.0f), _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, _mm512_set1_ps(1.0f)))), v);
    _mm512_storeu_ps(y + i, _mm512_mask_mov_ps(big, _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.625f), _CMP_LT_OQ),
                                               tanh_small16(v)));
  }
#endif
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 ax = _mm256_andnot_ps(sign, v);
    const __m256 z = _mm256_mul_ps(v, v);
    __m256 p = _mm256_set1_ps(-5.70498872745e-3f);  // |x| < 0.625: odd polynomial, no cancellation
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.06390887954e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.37397155531e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.33314422036e-1f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.33332819422e-1f));
    const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), v, v);
    const __m256 e = exp8(_mm256_mul_ps(two, ax));  // else 1 - 2 / (e^{2|x|} + 1), with x's sign
    __m256 big = _mm256_sub_ps(one, _mm256_div_ps(two, _mm256_add_ps(e, one)));
    big = _mm256_or_ps(big, _mm256_and_ps(sign, v));
    const __m256 use_small = _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ);  // NaN: false -> big (NaN)
    _mm256_storeu_ps(y + i, _mm256_blendv_ps(big, small, use_small));
  }
  for (; i < n; ++i) y[i] = vtanh(x[i]);
}
#endif  // __AVX2__ && __FMA__
