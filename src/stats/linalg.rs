//! Small dense symmetric-matrix routines with R `survival`'s conventions.
//!
//! The Cox fit must agree with R when the information matrix is (nearly) singular, so the
//! generalised Cholesky decomposition below is Therneau's `cholesky2`: `A = L D L'` with a
//! unit lower-triangular `L`; a pivot below `toler` times the largest diagonal marks the column
//! as redundant (its `D` is set to 0, and solves and inverses give 0 there). The log-rank test
//! needs an ordinary solve, done as R's `solve()` does: LU with partial pivoting.
//!
//! The loops keep the index form of the C originals so that they can be checked line by line.
#![allow(clippy::needless_range_loop)]

/// A square matrix stored row-major.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Square {
    pub n: usize,
    pub a: Vec<f64>,
}

impl Square {
    /// An `n × n` matrix of zeros.
    pub fn zeros(n: usize) -> Self {
        Self {
            n,
            a: vec![0.0; n * n],
        }
    }
    /// Element `(i, j)`.
    #[inline]
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.a[i * self.n + j]
    }
    /// Sets element `(i, j)`.
    #[inline]
    pub fn set(&mut self, i: usize, j: usize, v: f64) {
        self.a[i * self.n + j] = v;
    }
}

/// `cholesky2`: factors the symmetric matrix whose upper triangle (with diagonal) is given, in
/// place: `L` below the diagonal, `D` on it. Returns the rank, negated when the matrix is not
/// non-negative definite.
pub(crate) fn cholesky2(m: &mut Square, toler: f64) -> i64 {
    let n = m.n;
    let mut eps = 0.0f64;
    for i in 0..n {
        if m.get(i, i) > eps {
            eps = m.get(i, i);
        }
        for j in (i + 1)..n {
            let v = m.get(i, j);
            m.set(j, i, v);
        }
    }
    if eps == 0.0 {
        // No positive diagonal: every column is constant. Mark them all redundant.
        for i in 0..n {
            m.set(i, i, 0.0);
        }
        return 0;
    }
    eps *= toler;
    let mut rank = 0i64;
    let mut nonneg = 1i64;
    for i in 0..n {
        let pivot = m.get(i, i);
        if !pivot.is_finite() || pivot < eps {
            m.set(i, i, 0.0);
            if pivot < -8.0 * eps {
                nonneg = -1;
            }
        } else {
            rank += 1;
            for j in (i + 1)..n {
                let temp = m.get(j, i) / pivot;
                m.set(j, i, temp);
                let d = m.get(j, j) - temp * temp * pivot;
                m.set(j, j, d);
                for k in (j + 1)..n {
                    let v = m.get(k, j) - temp * m.get(k, i);
                    m.set(k, j, v);
                }
            }
        }
    }
    rank * nonneg
}

/// `chsolve2`: solves `A x = y` in place given the [`cholesky2`] factors of `A`.
pub(crate) fn chsolve2(m: &Square, y: &mut [f64]) {
    let n = m.n;
    for i in 0..n {
        let mut temp = y[i];
        for j in 0..i {
            temp -= y[j] * m.get(i, j);
        }
        y[i] = temp;
    }
    for i in (0..n).rev() {
        if m.get(i, i) == 0.0 {
            y[i] = 0.0;
        } else {
            let mut temp = y[i] / m.get(i, i);
            for j in (i + 1)..n {
                temp -= y[j] * m.get(j, i);
            }
            y[i] = temp;
        }
    }
}

/// `chinv2` followed by symmetrisation: replaces the [`cholesky2`] factors of `A` by the
/// (generalised) inverse of `A`, with zero rows and columns for redundant columns.
pub(crate) fn chinv2(m: &mut Square) {
    let n = m.n;
    for i in 0..n {
        if m.get(i, i) > 0.0 {
            let d = 1.0 / m.get(i, i);
            m.set(i, i, d);
            for j in (i + 1)..n {
                let v = -m.get(j, i);
                m.set(j, i, v);
                for k in 0..i {
                    let w = m.get(j, k) + v * m.get(i, k);
                    m.set(j, k, w);
                }
            }
        }
    }
    for i in 0..n {
        if m.get(i, i) == 0.0 {
            for j in 0..i {
                m.set(j, i, 0.0);
            }
            for j in i..n {
                m.set(i, j, 0.0);
            }
        } else {
            for j in (i + 1)..n {
                let temp = m.get(j, i) * m.get(j, j);
                m.set(i, j, temp);
                for k in i..j {
                    let v = m.get(i, k) + temp * m.get(j, k);
                    m.set(i, k, v);
                }
            }
        }
    }
    for i in 0..n {
        for j in 0..i {
            let v = m.get(j, i);
            m.set(i, j, v);
        }
    }
}

/// Solves `A x = b` by LU decomposition with partial pivoting (LAPACK `dgesv`, as R's
/// `solve()`); `None` when a pivot is exactly zero or the matrix is numerically singular
/// (reciprocal condition estimate below machine epsilon, R's "computationally singular").
pub(crate) fn lu_solve(mut m: Square, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = m.n;
    let norm1 = (0..n)
        .map(|j| (0..n).map(|i| m.get(i, j).abs()).sum::<f64>())
        .fold(0.0, f64::max);
    for col in 0..n {
        let (pivot_row, pivot_abs) = (col..n)
            .map(|r| (r, m.get(r, col).abs()))
            .fold((col, -1.0), |best, c| if c.1 > best.1 { c } else { best });
        if pivot_abs == 0.0 || !pivot_abs.is_finite() {
            return None;
        }
        if pivot_row != col {
            for j in 0..n {
                let (x, y) = (m.get(col, j), m.get(pivot_row, j));
                m.set(col, j, y);
                m.set(pivot_row, j, x);
            }
            b.swap(col, pivot_row);
        }
        let p = m.get(col, col);
        for r in (col + 1)..n {
            let f = m.get(r, col) / p;
            if f != 0.0 {
                for j in col..n {
                    let v = m.get(r, j) - f * m.get(col, j);
                    m.set(r, j, v);
                }
                b[r] -= f * b[col];
            }
        }
    }
    // A cheap condition check: the smallest |U_ii| relative to the 1-norm.
    let min_pivot = (0..n)
        .map(|i| m.get(i, i).abs())
        .fold(f64::INFINITY, f64::min);
    if n > 0 && min_pivot / norm1 < f64::EPSILON {
        return None;
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for j in (i + 1)..n {
            s -= m.get(i, j) * b[j];
        }
        b[i] = s / m.get(i, i);
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sq(n: usize, a: &[f64]) -> Square {
        Square { n, a: a.to_vec() }
    }

    #[test]
    fn cholesky_inverse_of_spd() {
        let a = [4.0, 2.0, 0.6, 2.0, 2.0, 0.5, 0.6, 0.5, 3.0];
        let mut m = sq(3, &a);
        assert_eq!(cholesky2(&mut m, 1e-12), 3);
        let mut y = vec![1.0, 2.0, 3.0];
        chsolve2(&m, &mut y);
        for i in 0..3 {
            let r: f64 = (0..3).map(|j| a[i * 3 + j] * y[j]).sum();
            assert!((r - (i as f64 + 1.0)).abs() < 1e-12);
        }
        chinv2(&mut m);
        for i in 0..3 {
            for j in 0..3 {
                let r: f64 = (0..3).map(|k| a[i * 3 + k] * m.get(k, j)).sum();
                let e = if i == j { 1.0 } else { 0.0 };
                assert!((r - e).abs() < 1e-12, "{i},{j}: {r}");
            }
        }
    }

    #[test]
    fn redundant_column_gets_zero() {
        // Column 3 = column 1 + column 2.
        let a = [2.0, 1.0, 3.0, 1.0, 2.0, 3.0, 3.0, 3.0, 6.0];
        let mut m = sq(3, &a);
        assert_eq!(cholesky2(&mut m, 1.8e-12), 2);
        chinv2(&mut m);
        for k in 0..3 {
            assert_eq!(m.get(2, k), 0.0);
            assert_eq!(m.get(k, 2), 0.0);
        }
    }

    #[test]
    fn lu_solves_and_detects_singular() {
        let x = lu_solve(sq(2, &[0.0, 1.0, 2.0, 1.0]), vec![1.0, 4.0]).unwrap();
        assert!((x[0] - 1.5).abs() < 1e-15 && (x[1] - 1.0).abs() < 1e-15);
        assert!(lu_solve(sq(2, &[1.0, 2.0, 2.0, 4.0]), vec![1.0, 1.0]).is_none());
    }
}
