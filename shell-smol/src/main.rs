fn main() {
    eprintln!("agent-cli-proxy-smol: serve is not built yet");
}
