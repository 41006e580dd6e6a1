//! Bounds on what a protocol may declare, so that no file can make the engine allocate without
//! limit (a block of four billion slots, a million arms) or read a file without end.

/// Largest protocol file read, in bytes.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Most arms a trial may declare (platform trials included).
pub const MAX_ARMS: usize = 20;
/// Largest allocation ratio of one arm.
pub const MAX_RATIO: u32 = 100;
/// Largest permuted block.
pub const MAX_BLOCK_SIZE: u32 = 1000;
/// Most sites a trial may declare.
pub const MAX_SITES: usize = 2000;
/// Most levels of one category field.
pub const MAX_LEVELS: usize = 200;
/// Most stratification factors.
pub const MAX_STRATA_FACTORS: usize = 8;
