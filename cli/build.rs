//! Links `custody` so that libavdevice is loaded only when FFmpeg is first used, not at
//! every start (src/avdevice.rs says why and how).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    // The library FFmpeg's bindings link against (ffmpeg-sys-next finds it with pkg-config
    // too): its soname carries the major version, as libavdevice.so.59 for FFmpeg 5.1.
    let major = Command::new("pkg-config")
        .args(["--modversion", "libavdevice"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let version = String::from_utf8_lossy(&o.stdout).trim().to_string();
            version.split('.').next().filter(|m| m.parse::<u32>().is_ok()).map(str::to_string)
        });
    let soname = match major {
        Some(m) => format!("libavdevice.so.{m}"),
        None => {
            println!("cargo:warning=pkg-config does not know libavdevice; capture devices will load libavdevice.so");
            "libavdevice.so".to_string()
        }
    };
    println!("cargo:rustc-env=CUSTODY_AVDEVICE_SONAME={soname}");
    // The one call into libavdevice (FFmpeg's initialisation registering the devices) goes
    // to `__wrap_avdevice_register_all` in src/avdevice.rs; with nothing else referring to
    // the library, the linker's --as-needed (rustc's default) leaves it out of the binary's
    // DT_NEEDED. Only the `custody` binary is linked so: it is the one that defines the
    // wrapper.
    println!("cargo:rustc-link-arg-bin=custody=-Wl,--wrap=avdevice_register_all");
}
