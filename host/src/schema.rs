//! Tool input schemas: compiled once when a tool loads, checked before every
//! invocation so that a tool never runs on input its schema rules out.
//! External `$ref`s are not fetched (the crate is built without its HTTP and
//! file resolvers): a tool cannot make the host reach the network.

use serde_json::Value;

/// How many schema violations an error message lists.
const MAX_REPORTED: usize = 3;

pub(crate) struct InputSchema {
    validator: jsonschema::Validator,
}

impl InputSchema {
    /// Compiles a schema given as JSON text.
    ///
    /// # Errors
    ///
    /// What is wrong with the text or the schema.
    pub(crate) fn compile(text: &str) -> Result<Self, String> {
        let schema: Value = serde_json::from_str(text).map_err(|e| format!("it is not JSON: {e}"))?;
        let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
        Ok(InputSchema { validator })
    }

    /// Checks an input.
    ///
    /// # Errors
    ///
    /// A message naming each violated field (as a JSON pointer) and why.
    pub(crate) fn check(&self, input: &Value) -> Result<(), String> {
        // The fast path answers yes/no without building error reports.
        if self.validator.is_valid(input) {
            return Ok(());
        }
        let errors = self.validator.iter_errors(input);
        let mut problems = Vec::new();
        let mut total = 0usize;
        for error in errors {
            total += 1;
            if problems.len() < MAX_REPORTED {
                let path = error.instance_path().to_string();
                let at = if path.is_empty() { "the input".to_owned() } else { format!("field `{path}`") };
                problems.push(format!("{at}: {error}"));
            }
        }
        let more = if total > MAX_REPORTED {
            format!(" (and {} more)", total - MAX_REPORTED)
        } else {
            String::new()
        };
        Err(format!("the input does not match the tool's schema: {}{more}", problems.join("; ")))
    }
}
