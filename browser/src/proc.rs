//! CPU time of a process tree, from Linux's /proc (proc(5)): what a browser and the
//! processes it started (renderer, GPU, audio and video capture) cost the machine.

use std::collections::HashMap;
use std::time::Duration;

/// (parent pid, user + system clock ticks) of process `pid`, from /proc/PID/stat.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields follow the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... utime(14) stime(15), counted from 3.
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// User + system CPU time of `root` and every living process descended from it. (A
/// process that already exited is not counted: measure across a span in which the
/// browser's processes live, and take the difference.)
pub fn tree_cpu_time(root: u32) -> Duration {
    let mut procs: HashMap<u32, (u32, u64)> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
                if let Some(s) = stat(pid) {
                    procs.insert(pid, s);
                }
            }
        }
    }
    let mut total = 0u64;
    let mut stack = vec![root];
    let mut seen = std::collections::HashSet::new();
    while let Some(p) = stack.pop() {
        if !seen.insert(p) {
            continue;
        }
        if let Some(&(_, t)) = procs.get(&p) {
            total += t;
        }
        stack.extend(procs.iter().filter(|(_, (pp, _))| *pp == p).map(|(&c, _)| c));
    }
    Duration::from_millis(total * 1000 / ticks_per_second())
}

/// CPU time of each living process descended from `root` (itself included), by its
/// Chromium `--type=` (browser, renderer, gpu-process, utility…), for telling the page's
/// own cost (the renderer) from the camera's and the encoder's.
pub fn tree_cpu_by_type(root: u32) -> Vec<(String, Duration)> {
    let mut out: HashMap<String, u64> = HashMap::new();
    let mut stack = vec![root];
    let mut seen = std::collections::HashSet::new();
    let all: Vec<(u32, (u32, u64))> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
                .filter_map(|pid| stat(pid).map(|s| (pid, s)))
                .collect()
        })
        .unwrap_or_default();
    while let Some(p) = stack.pop() {
        if !seen.insert(p) {
            continue;
        }
        if let Some((_, (_, t))) = all.iter().find(|(pid, _)| *pid == p) {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let kind = cmd
                .split(|&b| b == 0)
                .filter_map(|a| std::str::from_utf8(a).ok())
                .find_map(|a| a.strip_prefix("--type="))
                .unwrap_or("browser")
                .to_string();
            let kind = match kind.as_str() {
                "utility" => {
                    let sub = cmd
                        .split(|&b| b == 0)
                        .filter_map(|a| std::str::from_utf8(a).ok())
                        .find_map(|a| a.strip_prefix("--utility-sub-type="))
                        .unwrap_or("")
                        .to_string();
                    format!("utility {sub}")
                }
                _ => kind,
            };
            *out.entry(kind).or_default() += t;
        }
        stack.extend(all.iter().filter(|(_, (pp, _))| *pp == p).map(|(c, _)| *c));
    }
    let tps = ticks_per_second();
    let mut v: Vec<(String, Duration)> =
        out.into_iter().map(|(k, t)| (k, Duration::from_millis(t * 1000 / tps))).collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[test]
    fn a_busy_child_counts_in_its_parents_tree() {
        let me = std::process::id();
        // Busy for a while, then idle but alive (a process that exited is not counted).
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 3000000 ]; do i=$((i+1)); done; exec sleep 30"])
            .spawn()
            .unwrap();
        let started = Instant::now();
        while super::tree_cpu_time(child.id()) < Duration::from_millis(300) {
            assert!(started.elapsed() < Duration::from_secs(30), "the child never got busy");
            std::thread::sleep(Duration::from_millis(50));
        }
        let child_cpu = super::tree_cpu_time(child.id());
        let tree = super::tree_cpu_time(me);
        let own = super::stat(me).map(|(_, t)| t).unwrap();
        let own = Duration::from_millis(own * 1000 / super::ticks_per_second());
        let _ = child.kill();
        let _ = child.wait();
        // The parent's tree is its own time plus (at least) the child's.
        assert!(tree >= own + child_cpu, "tree {tree:?}, own {own:?}, child {child_cpu:?}");
        assert!(!super::tree_cpu_by_type(me).is_empty());
    }
}
