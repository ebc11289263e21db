//! The dlib encoder against face_recognition 1.3.0: its published expectations, Python's
//! own output on the same images, and the image formats users send.
//!
//! Needs the `dlib` feature, the models and sample images (`scripts/setup.sh`), and for the
//! parity test the Python reference (`scripts/python-env.sh`, `FACEREC_PYTHON`).
//! Missing inputs fail these tests; they never skip.
#![cfg(feature = "dlib")]

mod helpers;

mod expectations;
mod formats;
mod parity;
