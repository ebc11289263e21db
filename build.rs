//! Compiles the dlib C++ shim (`src/adapters/dlib/shim.rs`) when the `dlib` feature is on.
//!
//! The HOG scan (`src/adapters/dlib/fast_hog.hpp`, dlib's templates) and the shape
//! predictor are compiled here, into our object file, not taken from libdlib.so, so their
//! speed depends on the flags used here. With AVX2 the shim uses fast_hog.hpp's scan (about
//! 2.2 x dlib's on the sample images); without it, dlib's own (docs/PERFORMANCE.md, build
//! flags). `FACEREC_CXX_ARCH` overrides the target CPU flags (the container pins
//! `-march=x86-64-v3`); the default follows the build host.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=FACEREC_CXX_ARCH");
    #[cfg(feature = "dlib")]
    build_shim();
}

#[cfg(feature = "dlib")]
fn build_shim() {
    println!("cargo:rerun-if-changed=src/adapters/dlib/shim.rs");
    println!("cargo:rerun-if-changed=src/adapters/dlib/fast_hog.hpp");
    println!("cargo:rerun-if-changed=src/adapters/dlib/fast_hog_check.hpp");
    println!("cargo:rerun-if-changed=src/decode/libjpeg.rs");
    let arch = std::env::var("FACEREC_CXX_ARCH").unwrap_or_else(|_| host_arch_flags().to_owned());
    let mut config = cpp_build::Config::new();
    config.flag("-std=c++14").opt_level(3).include("src/adapters/dlib");
    for flag in arch.split_whitespace() {
        config.flag(flag);
    }
    config.build("src/lib.rs");
    // Recorded so the encoder can refuse to start (instead of dying with SIGILL) on a CPU
    // that lacks the instructions the shim was compiled for.
    println!("cargo:rustc-env=FACEREC_SHIM_ARCH={arch}");
    // The `openblas` feature of dlib-face-recognition links openblas, dlib and lapack; the
    // JPEG decoder (src/decode/libjpeg.rs) calls libjpeg-turbo directly.
    println!("cargo:rustc-link-lib=jpeg");
}

/// AVX2 + FMA when the machine that builds also has them (the common case for a worker
/// built where it runs); plain x86-64 otherwise, so a build never produces a binary that
/// dies with SIGILL on its own host.
#[cfg(feature = "dlib")]
fn host_arch_flags() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return "-mavx2 -mfma";
        }
    }
    ""
}
