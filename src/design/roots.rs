//! One-dimensional root finding for the boundary searches: a safeguarded Newton iteration when
//! the derivative is at hand (boundaries, where it is a by-product of the crossing sum) and
//! Brent's method when it is not (the drift that gives a design its power).

/// Solves `f(x) = 0` for a monotone `f` on `[lo, hi]`, `f` returning `(value, derivative)`.
/// Newton steps that leave the current bracket are replaced by bisection. Returns the end of
/// the interval when `f` does not change sign there (the root is beyond it).
pub(crate) fn newton_bracketed(
    mut f: impl FnMut(f64) -> (f64, f64),
    mut lo: f64,
    mut hi: f64,
    start: f64,
    tolerance: f64,
) -> f64 {
    let (f_lo, _) = f(lo);
    let (f_hi, _) = f(hi);
    if f_lo == 0.0 {
        return lo;
    }
    if f_hi == 0.0 {
        return hi;
    }
    if f_lo.signum() == f_hi.signum() {
        return if f_lo.abs() < f_hi.abs() { lo } else { hi };
    }
    let increasing = f_hi > 0.0;
    let mut x = if start > lo && start < hi {
        start
    } else {
        0.5 * (lo + hi)
    };
    for _ in 0..200 {
        let (v, d) = f(x);
        if v == 0.0 {
            return x;
        }
        if (v > 0.0) == increasing {
            hi = x;
        } else {
            lo = x;
        }
        let newton = x - v / d;
        let next = if d != 0.0 && newton.is_finite() && newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if (next - x).abs() <= tolerance || hi - lo <= tolerance {
            return next;
        }
        x = next;
    }
    x
}

/// Brent's method for `f(x) = 0` on `[a, b]`; `None` when `f(a)` and `f(b)` have the same sign.
pub(crate) fn brent(mut f: impl FnMut(f64) -> f64, a: f64, b: f64, tolerance: f64) -> Option<f64> {
    let (mut a, mut b) = (a, b);
    let (mut fa, mut fb) = (f(a), f(b));
    if fa == 0.0 {
        return Some(a);
    }
    if fb == 0.0 {
        return Some(b);
    }
    if fa.signum() == fb.signum() || !fa.is_finite() || !fb.is_finite() {
        return None;
    }
    let (mut c, mut fc) = (a, fa);
    let mut d = b - a;
    let mut e = d;
    for _ in 0..200 {
        if fb.signum() == fc.signum() {
            c = a;
            fc = fa;
            d = b - a;
            e = d;
        }
        if fc.abs() < fb.abs() {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        let tol = 2.0 * f64::EPSILON * b.abs() + 0.5 * tolerance;
        let m = 0.5 * (c - b);
        if m.abs() <= tol || fb == 0.0 {
            return Some(b);
        }
        if e.abs() >= tol && fa.abs() > fb.abs() {
            let s = fb / fa;
            let (mut p, mut q);
            if a == c {
                p = 2.0 * m * s;
                q = 1.0 - s;
            } else {
                let qa = fa / fc;
                let r = fb / fc;
                p = s * (2.0 * m * qa * (qa - r) - (b - a) * (r - 1.0));
                q = (qa - 1.0) * (r - 1.0) * (s - 1.0);
            }
            if p > 0.0 {
                q = -q;
            } else {
                p = -p;
            }
            if 2.0 * p < (3.0 * m * q - (tol * q).abs()).min((e * q).abs()) {
                e = d;
                d = p / q;
            } else {
                d = m;
                e = m;
            }
        } else {
            d = m;
            e = m;
        }
        a = b;
        fa = fb;
        b += if d.abs() > tol { d } else { tol.copysign(m) };
        fb = f(b);
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_find_a_cube_root() {
        let x = newton_bracketed(|x| (x * x * x - 2.0, 3.0 * x * x), 0.0, 3.0, 1.0, 1e-14);
        assert!((x - 2f64.cbrt()).abs() < 1e-13);
        let y = brent(|x| x * x * x - 2.0, 0.0, 3.0, 1e-14).unwrap();
        assert!((y - 2f64.cbrt()).abs() < 1e-13);
        assert!(brent(|x| x * x + 1.0, -1.0, 1.0, 1e-12).is_none());
    }
}
