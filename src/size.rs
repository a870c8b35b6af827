//! Sizes known before allocating: refusing, with an error, what cannot fit.
//!
//! An allocation that fails aborts the process (it does not panic, so nothing can catch
//! it). Where a size is computable up front (a sample's shape, a model's smallest
//! possible parameter count) the crate compares it with the machine's memory first.

use crate::error::{self, DiffusionError};

/// Bytes of one element (the crate computes in f32).
const ELEMENT_BYTES: u128 = 4;

/// The number of elements of `dims`, or an error naming `what` if it overflows or if
/// `copies` tensors of that many f32 elements cannot fit in the host's memory.
pub(crate) fn check_elements(
    what: &'static str,
    dims: &[usize],
    copies: u128,
) -> error::Result<usize> {
    let elements = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let Some(elements) = elements else {
        return Err(too_large(
            what,
            &format!("{dims:?}"),
            "its element count overflows usize",
        ));
    };
    check_bytes(
        what,
        &format!("{dims:?}"),
        elements as u128 * ELEMENT_BYTES * copies,
    )?;
    Ok(elements)
}

/// An error naming `what` if `elements` f32 values (a lower bound of what will be
/// allocated) cannot fit in the host's memory.
pub(crate) fn check_parameters(what: &'static str, elements: u128) -> error::Result<()> {
    check_bytes(
        what,
        &format!("{elements} parameters"),
        elements.saturating_mul(ELEMENT_BYTES),
    )
}

fn check_bytes(what: &'static str, value: &str, bytes: u128) -> error::Result<()> {
    let limit = memory_limit();
    if bytes > limit {
        let gib = |b: u128| b as f64 / (1u128 << 30) as f64;
        return Err(too_large(
            what,
            value,
            &format!(
                "needs at least {:.1} GiB, more than this machine's {:.1} GiB of memory",
                gib(bytes),
                gib(limit)
            ),
        ));
    }
    Ok(())
}

fn too_large(what: &'static str, value: &str, reason: &str) -> DiffusionError {
    DiffusionError::config(what, value, format!("too large: {reason}"))
}

/// The host's physical memory (Linux: `MemTotal` of `/proc/meminfo`), else the largest
/// allocation Rust allows (`isize::MAX` bytes).
fn memory_limit() -> u128 {
    let fallback = isize::MAX as u128;
    let Ok(info) = std::fs::read_to_string("/proc/meminfo") else {
        return fallback;
    };
    info.lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u128>().ok())
        .map_or(fallback, |kib| (kib * 1024).min(fallback))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflowing_and_oversized_shapes_are_errors() {
        assert!(check_elements("x", &[usize::MAX, 2], 1).is_err());
        assert!(check_elements("x", &[1 << 30, 1 << 30], 1).is_err());
        assert_eq!(check_elements("x", &[3, 4, 5], 1), Ok(60));
        assert_eq!(check_elements("x", &[0, 4], 1), Ok(0));
        assert!(check_parameters("m", u128::MAX).is_err());
        assert!(check_parameters("m", 1000).is_ok());
    }

    #[test]
    fn the_limit_is_the_machines_memory() {
        let limit = memory_limit();
        // Any machine that builds this crate has more than 256 MiB.
        assert!(limit > 1 << 28, "{limit}");
        assert!(limit <= isize::MAX as u128);
    }
}
