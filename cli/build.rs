//! Links `custody` so that FFmpeg's libraries are loaded only when FFmpeg is first used,
//! not at every start: src/avdevice.rs and src/ffmpeg_lazy.rs say why and how.

use std::process::Command;

/// Every FFmpeg function the binary calls (`nm -D --undefined-only target/release/custody`
/// lists them; custody-capture calls them, through ffmpeg-next). Each call goes through a
/// stub in src/ffmpeg_lazy.rs that loads the libraries at the first call. A function missing
/// here still works — the linker then links its library the usual way, loaded at every start
/// again — and `custody_starts_without_ffmpeg` (cli/tests/verify_bench.rs) says so.
const FFMPEG_FUNCTIONS: &[&str] = &[
    "av_bsf_free",
    "av_bsf_init",
    "av_bsf_list_parse_str",
    "av_bsf_receive_packet",
    "av_bsf_send_packet",
    "av_codec_is_decoder",
    "av_codec_is_encoder",
    "av_dict_free",
    "av_dict_set",
    "av_display_rotation_get",
    "av_display_rotation_set",
    "av_find_best_stream",
    "av_find_input_format",
    "av_frame_alloc",
    "av_frame_free",
    "av_frame_get_buffer",
    "av_free",
    "av_freep",
    "av_get_bytes_per_sample",
    "av_get_default_channel_layout",
    "av_init_packet",
    "av_interleaved_write_frame",
    "av_log_format_line2",
    "av_log_get_level",
    "av_log_set_callback",
    "av_log_set_level",
    "av_mallocz",
    "av_new_packet",
    "av_opt_set",
    "av_packet_copy_props",
    "av_packet_rescale_ts",
    "av_packet_unref",
    "av_read_frame",
    "av_rescale_q",
    "av_sample_fmt_is_planar",
    "av_stream_get_side_data",
    "av_stream_new_side_data",
    "av_strerror",
    "av_write_frame",
    "av_write_trailer",
    "avcodec_alloc_context3",
    "avcodec_close",
    "avcodec_find_decoder",
    "avcodec_find_encoder",
    "avcodec_find_encoder_by_name",
    "avcodec_free_context",
    "avcodec_get_name",
    "avcodec_open2",
    "avcodec_parameters_alloc",
    "avcodec_parameters_copy",
    "avcodec_parameters_free",
    "avcodec_parameters_from_context",
    "avcodec_parameters_to_context",
    "avcodec_receive_frame",
    "avcodec_receive_packet",
    "avcodec_send_frame",
    "avcodec_send_packet",
    "avformat_alloc_context",
    "avformat_alloc_output_context2",
    "avformat_close_input",
    "avformat_find_stream_info",
    "avformat_free_context",
    "avformat_network_init",
    "avformat_new_stream",
    "avformat_open_input",
    "avformat_write_header",
    "avio_alloc_context",
    "avio_close",
    "avio_context_free",
    "avio_flush",
    "avio_open",
    "sws_freeContext",
    "sws_getContext",
    "sws_scale",
];

/// The libraries those functions live in, by pkg-config name.
const FFMPEG_LIBRARIES: &[&str] = &["libavformat", "libavcodec", "libswscale", "libavutil"];

/// The soname pkg-config's `name` links against (`libavdevice.so.59` for FFmpeg 5.1's
/// libavdevice 59.7.100: the soname carries the major version), or the unversioned name.
fn soname(name: &str) -> String {
    let major = Command::new("pkg-config")
        .args(["--modversion", name])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let version = String::from_utf8_lossy(&o.stdout).trim().to_string();
            version.split('.').next().filter(|m| m.parse::<u32>().is_ok()).map(str::to_string)
        });
    match major {
        Some(m) => format!("{name}.so.{m}"),
        None => {
            println!("cargo:warning=pkg-config does not know {name}; custody will load {name}.so");
            format!("{name}.so")
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo::rustc-check-cfg=cfg(custody_lazy_ffmpeg)");
    println!("cargo:rustc-env=CUSTODY_AVDEVICE_SONAME={}", soname("libavdevice"));
    // The one call into libavdevice (FFmpeg's initialisation registering the devices) goes
    // to `__wrap_avdevice_register_all` in src/avdevice.rs; with nothing else referring to
    // the library, the linker's --as-needed (rustc's default) leaves it out of the binary's
    // DT_NEEDED. Only the `custody` binary is linked so: it is the one that defines the
    // wrappers.
    println!("cargo:rustc-link-arg-bin=custody=-Wl,--wrap=avdevice_register_all");

    // The stubs are x86-64 assembly (src/ffmpeg_lazy.rs); elsewhere FFmpeg is linked as usual.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch != "x86_64" || os != "linux" {
        return;
    }
    println!("cargo:rustc-cfg=custody_lazy_ffmpeg");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut asm = String::from(
        ".pushsection .data\n.balign 8\n.globl custody_ffmpeg_slots\ncustody_ffmpeg_slots:\n",
    );
    for i in 0..FFMPEG_FUNCTIONS.len() {
        asm.push_str(&format!("    .quad custody_ffmpeg_lazy_{i}\n"));
    }
    asm.push_str(".popsection\n.pushsection .text\n");
    for (i, f) in FFMPEG_FUNCTIONS.iter().enumerate() {
        println!("cargo:rustc-link-arg-bin=custody=-Wl,--wrap={f}");
        asm.push_str(&format!(
            ".globl __wrap_{f}\n.type __wrap_{f},@function\n__wrap_{f}:\n    jmp qword ptr [rip + custody_ffmpeg_slots + {}]\n\
             custody_ffmpeg_lazy_{i}:\n    mov r11d, {i}\n    jmp custody_ffmpeg_resolve\n",
            8 * i
        ));
    }
    asm.push_str(".popsection\n");
    let names: Vec<String> = FFMPEG_FUNCTIONS.iter().map(|f| format!("c\"{f}\"")).collect();
    let libs: Vec<String> =
        FFMPEG_LIBRARIES.iter().map(|l| format!("c\"{}\"", soname(l))).collect();
    let rust = format!(
        "/// The functions, in the order of their slots.\nconst FUNCTIONS: [&std::ffi::CStr; {}] = [{}];\n\
         /// The libraries they are looked up in.\nconst LIBRARIES: [&std::ffi::CStr; {}] = [{}];\n",
        names.len(),
        names.join(", "),
        libs.len(),
        libs.join(", ")
    );
    std::fs::write(out.join("ffmpeg_stubs.s"), asm).expect("OUT_DIR is writable");
    std::fs::write(out.join("ffmpeg_functions.rs"), rust).expect("OUT_DIR is writable");
}
