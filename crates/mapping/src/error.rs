/// Why a payload field was refused. Values are never included: they come from a
/// peer and may carry personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {problem}")]
pub struct MappingError {
    pub field: &'static str,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("is required")]
    Missing,
    #[error("expected {0}")]
    WrongType(&'static str),
    #[error("is longer than {0} characters")]
    TooLong(usize),
    #[error("contains a NUL character")]
    NulCharacter,
    #[error("is out of range ({0})")]
    OutOfRange(&'static str),
    #[error("{0}")]
    Invalid(String),
}

impl MappingError {
    pub fn new(field: &'static str, problem: Problem) -> Self {
        Self { field, problem }
    }
}
