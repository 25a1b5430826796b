fn main() {
    eprintln!("agent-cli-proxy: serve is not built yet");
}
