//! libavdevice, loaded when FFmpeg is first initialised instead of when `custody` starts.
//!
//! Capture devices — a webcam through v4l2, the synthetic camera through lavfi — are all
//! custody uses libavdevice for, yet linking it made every start of the binary load 79 more
//! shared libraries (libavfilter, SDL2, PulseAudio, JACK, OpenGL, Vulkan and theirs: 214
//! instead of 135) and resolve their symbols, which was half of the start-up time of every
//! command (about 60 ms of CPU of 115 ms, measured on `custody --version`), `custody verify`
//! of a bundle included. `build.rs` links the binary with `--wrap=avdevice_register_all`:
//! the one call into libavdevice, which `ffmpeg_next::init` makes when custody-capture
//! first initialises FFmpeg, comes to [`__wrap_avdevice_register_all`] below, which loads
//! the library then and makes the call. Commands that never touch FFmpeg never load it.

use std::ffi::CStr;

/// Stands in for libavdevice's `avdevice_register_all` (see the module's comment): loads
/// the library, then calls its own `avdevice_register_all`, which registers the devices
/// with the libavformat already loaded. Called once, from custody-capture's `Once`. If the
/// library cannot be loaded, a device input is then an unknown format to custody-capture,
/// and this says why on stderr (file and network inputs do not need it).
#[no_mangle]
extern "C" fn __wrap_avdevice_register_all() {
    let soname = concat!(env!("CUSTODY_AVDEVICE_SONAME"), "\0");
    let Ok(soname) = CStr::from_bytes_with_nul(soname.as_bytes()) else { return };
    // SAFETY: both names are NUL-terminated C strings; the handle is kept for the life of
    // the process (devices registered by the library point into it), and the symbol is
    // libavdevice's `void avdevice_register_all(void)`, called as that type.
    unsafe {
        let lib = libc::dlopen(soname.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if lib.is_null() {
            unavailable(soname);
            return;
        }
        let sym = libc::dlsym(lib, c"avdevice_register_all".as_ptr());
        if sym.is_null() {
            unavailable(soname);
            return;
        }
        let register: extern "C" fn() = std::mem::transmute(sym);
        register();
    }
}

fn unavailable(soname: &CStr) {
    eprintln!("custody: capture devices (v4l2, lavfi, …) are unavailable: {}", dl_error(soname));
}

/// The dynamic loader's last error, or a sentence naming `soname`.
fn dl_error(soname: &CStr) -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until the next dl* call
    // on this thread; it is copied at once.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        format!("{} could not be loaded", soname.to_string_lossy())
    } else {
        // SAFETY: as above.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}
