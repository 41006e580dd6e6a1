//! The standard normal distribution, fast and to full double precision: the density, both tails
//! of the distribution function (W. J. Cody's rational approximations, as R's `pnorm`) and the
//! quantile function (Wichura's AS 241, as R's `qnorm`).
//!
//! The one normal distribution of the crate: the statistics' p-values and confidence limits
//! ([`super::dist`]) and the group-sequential designs ([`crate::design`]) both use it. The
//! designs' recursive integration evaluates the distribution function tens of thousands of
//! times per design, which is why it is Cody's closed form (several times faster than an
//! incomplete-gamma route, and as accurate: it is the algorithm R itself runs).

// The published coefficients are kept digit for digit, as in R's nmath, so they can be checked
// against the papers; the compiler rounds them to the nearest double.
#![allow(clippy::excessive_precision)]

/// `1 / sqrt(2 pi)`.
pub(crate) const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_677_939_946_059_934;

/// Beyond this |x| the tail is below the smallest double (R's `pnorm` cut-off).
const TAIL_ZERO: f64 = 37.519_3;

/// Standard normal density.
///
/// ```
/// let d = rrct::stats::normal::density(1.0);
/// assert!((d - 0.241_970_724_519_143_37).abs() < 1e-16);
/// ```
#[inline]
pub fn density(x: f64) -> f64 {
    FRAC_1_SQRT_2PI * (-0.5 * x * x).exp()
}

/// `P(Z <= x)`, as R's `pnorm(x)`.
///
/// ```
/// let p = rrct::stats::normal::cdf(-1.959963984540054);
/// assert!((p - 0.025).abs() < 1e-16);
/// ```
#[inline]
pub fn cdf(x: f64) -> f64 {
    both_tails(x).0
}

/// `P(Z > x)`, as R's `pnorm(x, lower.tail = FALSE)`: accurate far into the upper tail.
///
/// ```
/// let p = rrct::stats::normal::upper_tail(8.0);
/// assert!((p / 6.220_960_574_271_784_9e-16 - 1.0).abs() < 1e-14);
/// ```
#[inline]
pub fn upper_tail(x: f64) -> f64 {
    both_tails(x).1
}

/// `(P(Z <= x), P(Z > x))` by Cody's algorithm (R's `pnorm_both`).
fn both_tails(x: f64) -> (f64, f64) {
    const A: [f64; 5] = [
        2.235_252_035_460_683_928_7,
        161.028_231_068_555_878_81,
        1_067.689_485_460_370_958_2,
        18_154.981_253_343_561_249,
        0.065_682_337_918_207_449_113,
    ];
    const B: [f64; 4] = [
        47.202_581_904_688_241_87,
        976.098_551_737_776_693_22,
        10_260.932_208_618_978_205,
        45_507.789_335_026_729_956,
    ];
    const C: [f64; 9] = [
        0.398_941_512_088_134_667_64,
        8.883_149_794_388_375_941_2,
        93.506_656_132_177_855_979,
        597.270_276_394_800_262_26,
        2_494.537_585_290_372_671_1,
        6_848.190_450_536_282_332_6,
        11_602.651_437_647_350_124,
        9_842.714_838_383_978_021_8,
        1.076_557_677_372_019_231_7e-8,
    ];
    const D: [f64; 8] = [
        22.266_688_044_328_115_691,
        235.387_901_782_624_998_61,
        1_519.377_599_407_554_805,
        6_485.558_298_266_760_755,
        18_615.571_640_885_098_091,
        34_900.952_721_145_977_266,
        38_912.003_286_093_271_411,
        19_685.429_676_859_990_727,
    ];
    const P: [f64; 6] = [
        0.215_898_534_057_956_99,
        0.127_401_161_160_247_363_9,
        0.022_235_277_870_649_807,
        0.001_421_619_193_227_893_466,
        2.911_287_495_116_879_2e-5,
        0.023_073_441_764_940_173_03,
    ];
    const Q: [f64; 5] = [
        1.284_260_096_144_911_21,
        0.468_238_212_480_865_118,
        0.065_988_137_868_928_551_5,
        0.003_782_396_332_027_582_44,
        7.297_515_550_839_662_05e-5,
    ];
    if x.is_nan() {
        return (f64::NAN, f64::NAN);
    }
    let y = x.abs();
    if y <= 0.674_489_75 {
        let (mut num, mut den) = (0.0, 0.0);
        if y > f64::EPSILON * 0.5 {
            let xsq = x * x;
            num = A[4] * xsq;
            den = xsq;
            for i in 0..3 {
                num = (num + A[i]) * xsq;
                den = (den + B[i]) * xsq;
            }
        }
        let temp = x * (num + A[3]) / (den + B[3]);
        return (0.5 + temp, 0.5 - temp);
    }
    // Tail of |x|: exp(-x^2/2) split as R does, so that the square loses no digits.
    let tail = |temp: f64, v: f64| {
        let xsq = (v * 16.0).trunc() / 16.0;
        let del = (v - xsq) * (v + xsq);
        (-xsq * xsq * 0.5).exp() * (-del * 0.5).exp() * temp
    };
    let small = if y <= 5.656_854_249_492_380_2 {
        let mut num = C[8] * y;
        let mut den = y;
        for i in 0..7 {
            num = (num + C[i]) * y;
            den = (den + D[i]) * y;
        }
        tail((num + C[7]) / (den + D[7]), y)
    } else if y < TAIL_ZERO {
        let xsq = 1.0 / (x * x);
        let mut num = P[5] * xsq;
        let mut den = xsq;
        for i in 0..4 {
            num = (num + P[i]) * xsq;
            den = (den + Q[i]) * xsq;
        }
        let temp = xsq * (num + P[4]) / (den + Q[4]);
        tail((FRAC_1_SQRT_2PI - temp) / y, y)
    } else {
        0.0
    };
    if x > 0.0 {
        (1.0 - small, small)
    } else {
        (small, 1.0 - small)
    }
}

/// The quantile `x` with `P(Z <= x) = p`, as R's `qnorm(p)`; NaN outside `[0, 1]`, infinite at
/// the ends.
///
/// ```
/// let z = rrct::stats::normal::quantile(0.975);
/// assert!((z - 1.959_963_984_540_054).abs() < 1e-15);
/// ```
pub fn quantile(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180_625 - q * q;
        return q
            * (((((((r * 2_509.080_928_730_122_672_7 + 33_430.575_583_588_128_105) * r
                + 67_265.770_927_008_700_853)
                * r
                + 45_921.953_931_549_871_457)
                * r
                + 13_731.693_765_509_461_125)
                * r
                + 1_971.590_950_306_551_442_7)
                * r
                + 133.141_667_891_784_377_45)
                * r
                + 3.387_132_872_796_366_608)
            / (((((((r * 5_226.495_278_852_854_561 + 28_729.085_735_721_942_674) * r
                + 39_307.895_800_092_710_61)
                * r
                + 21_213.794_301_586_595_867)
                * r
                + 5_394.196_021_424_751_107_7)
                * r
                + 687.187_007_492_057_908_3)
                * r
                + 42.313_330_701_600_911_252)
                * r
                + 1.0);
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let mut r = (-tail.ln()).sqrt();
    let val = if r <= 5.0 {
        r -= 1.6;
        (((((((r * 7.745_450_142_783_414_076_4e-4 + 0.022_723_844_989_269_184_583_3) * r
            + 0.241_780_725_177_450_611_77)
            * r
            + 1.270_458_252_452_368_382_58)
            * r
            + 3.647_848_324_763_204_605_04)
            * r
            + 5.769_497_221_460_691_405_5)
            * r
            + 4.630_337_846_156_545_295_9)
            * r
            + 1.423_437_110_749_683_577_34)
            / (((((((r * 1.050_750_071_644_416_843_24e-9 + 5.475_938_084_995_344_946e-4) * r
                + 0.015_198_666_563_616_457_196_6)
                * r
                + 0.148_103_976_427_480_074_59)
                * r
                + 0.689_767_334_985_100_004_55)
                * r
                + 1.676_384_830_183_803_849_4)
                * r
                + 2.053_191_626_637_758_821_87)
                * r
                + 1.0)
    } else {
        r -= 5.0;
        (((((((r * 2.010_334_399_292_288_132_65e-7 + 2.711_555_568_743_487_578_15e-5) * r
            + 0.001_242_660_947_388_078_438_6)
            * r
            + 0.026_532_189_526_576_123_093)
            * r
            + 0.296_560_571_828_504_891_23)
            * r
            + 1.784_826_539_917_291_335_8)
            * r
            + 5.463_784_911_164_114_369_9)
            * r
            + 6.657_904_643_501_103_777_2)
            / (((((((r * 2.044_263_103_389_939_785_64e-15 + 1.421_511_758_316_445_888_7e-7)
                * r
                + 1.846_318_317_510_054_681_8e-5)
                * r
                + 7.868_691_311_456_132_591e-4)
                * r
                + 0.014_875_361_290_850_614_852_5)
                * r
                + 0.136_929_880_922_735_805_31)
                * r
                + 0.599_832_206_555_887_937_69)
                * r
                + 1.0)
    };
    if q < 0.0 {
        -val
    } else {
        val
    }
}

/// The upper quantile `x` with `P(Z > x) = p` (R's `qnorm(p, lower.tail = FALSE)`), exact for
/// tiny `p` because it never forms `1 - p`.
///
/// ```
/// let z = rrct::stats::normal::upper_quantile(0.025);
/// assert!((z - 1.959_963_984_540_054).abs() < 1e-15);
/// ```
pub fn upper_quantile(p: f64) -> f64 {
    -quantile(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    // R 4.x: pnorm(x), pnorm(x, lower.tail = FALSE), qnorm(p), printed with 17 digits.
    #[test]
    fn matches_r() {
        let cases = [
            (0.3, 0.617_911_422_188_952_7, 0.382_088_577_811_047_3),
            (-1.5, 0.066_807_201_268_858_071, 0.933_192_798_731_141_91),
            (4.0, 0.999_968_328_758_166_88, 3.167_124_183_311_992_4e-5),
            (-7.0, 1.279_812_543_885_835_2e-12, 0.999_999_999_998_720_13),
            (10.0, 1.0, 7.619_853_024_160_526_9e-24),
        ];
        for (x, lower, upper) in cases {
            assert!(((cdf(x) - lower) / lower).abs() < 1e-14, "cdf({x})");
            assert!(
                ((upper_tail(x) - upper) / upper).abs() < 1e-14,
                "upper({x})"
            );
        }
        let q = [
            (0.001, -3.090_232_306_167_813_2),
            (0.2, -0.841_621_233_572_914_18),
            (0.9, 1.281_551_565_544_600_8),
            (1e-20, -9.262_340_089_798_405_2),
        ];
        for (p, x) in q {
            assert!(
                (quantile(p) - x).abs() < 1e-14 * x.abs().max(1.0),
                "qnorm({p})"
            );
        }
        assert_eq!(quantile(0.0), f64::NEG_INFINITY);
        assert!(quantile(1.5).is_nan());
        assert_eq!(upper_tail(40.0), 0.0);
    }
}
