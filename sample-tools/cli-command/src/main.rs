//! `cli-command`: a plain `wasi:cli/command` component, neither a tool nor
//! an agent. The host must refuse it with an error that says which world it
//! is not.

fn main() {
    println!("hello from a command component");
}
