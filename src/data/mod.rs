//! Datasets for the examples and for users' experiments: image sets read from the IDX
//! format (MNIST, Fashion-MNIST) and from scikit-learn's 8×8 digits CSV, and 2-D toy
//! distributions generated in code.

mod digits;
mod file;
mod idx;
mod image_dataset;
mod toy;

pub use image_dataset::ImageDataset;
pub use toy::Toy2d;
