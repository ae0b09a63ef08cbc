//! Fitting a conversation's context into the model's window.
//!
//! A dataset conversation can be longer than a model's window; that is the
//! dataset's length, not the model's fault. As the seed's validator did, the
//! context gets `window - reply budget` tokens (the reply budget is the
//! reference tokens for similarity, the generation budget for vibe), and the
//! oldest turns are dropped until the rendered context fits. The system prompt
//! (the character card) and the last user turn are always kept; turns go in
//! user/assistant pairs so the conversation still starts with a user turn and
//! roles still alternate (several templates raise otherwise). If even the
//! system prompt and the last user turn do not fit, the rendered tokens are
//! cut from the left, keeping the end of the prompt that the reply follows.

use crate::dataset::{Message, Role};

/// A context that fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FittedContext {
    /// The rendered and tokenized context, at most the budget long.
    pub tokens: Vec<u32>,
    /// Messages dropped from the front (after the system prompt).
    pub dropped_messages: usize,
    /// The rendered tokens had to be cut from the left as well.
    pub truncated: bool,
}

impl FittedContext {
    /// Whether anything was cut.
    pub fn is_cut(&self) -> bool {
        self.dropped_messages > 0 || self.truncated
    }
}

/// Renders and tokenizes `context` with `render`, dropping the oldest turns
/// until it is at most `budget` tokens (see the module docs). `budget` must be
/// positive. Errors of `render` are passed through.
pub fn fit_context<E>(
    context: &[Message],
    budget: usize,
    mut render: impl FnMut(&[Message]) -> Result<Vec<u32>, E>,
) -> Result<FittedContext, E> {
    debug_assert!(budget > 0, "a context budget of 0 tokens");
    let budget = budget.max(1);
    let system = usize::from(context.first().is_some_and(|m| m.role == Role::System));
    let mut tokens = render(context)?;
    if tokens.len() <= budget {
        return Ok(FittedContext {
            tokens,
            dropped_messages: 0,
            truncated: false,
        });
    }
    // Between the system prompt and the last message, drop whole user/assistant pairs.
    let turns = context.len().saturating_sub(system + 1);
    let mut dropped = 0;
    while dropped + 2 <= turns {
        dropped += 2;
        let mut kept = Vec::with_capacity(context.len() - dropped);
        kept.extend_from_slice(&context[..system]);
        kept.extend_from_slice(&context[system + dropped..]);
        tokens = render(&kept)?;
        if tokens.len() <= budget {
            return Ok(FittedContext {
                tokens,
                dropped_messages: dropped,
                truncated: false,
            });
        }
    }
    let excess = tokens.len() - budget;
    tokens.drain(..excess);
    Ok(FittedContext {
        tokens,
        dropped_messages: dropped,
        truncated: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: Role, content: &str) -> Message {
        Message::new(role, content)
    }

    /// One token per character of every message, plus one per message.
    fn render(messages: &[Message]) -> Result<Vec<u32>, ()> {
        Ok(messages
            .iter()
            .flat_map(|m| std::iter::once(0).chain(m.content.chars().map(u32::from)))
            .collect())
    }

    fn conversation() -> Vec<Message> {
        vec![
            msg(Role::System, "sys"),     // 4 tokens
            msg(Role::User, "aaaa"),      // 5
            msg(Role::Assistant, "bbbb"), // 5
            msg(Role::User, "cccc"),      // 5
            msg(Role::Assistant, "dddd"), // 5
            msg(Role::User, "last"),      // 5
        ]
    }

    #[test]
    fn a_context_that_fits_is_untouched() {
        let fitted = fit_context(&conversation(), 29, render).unwrap();
        assert_eq!(fitted.tokens.len(), 29);
        assert!(!fitted.is_cut());
    }

    #[test]
    fn oldest_pairs_go_first_and_system_and_last_user_stay() {
        let mut seen = Vec::new();
        let fitted = fit_context(&conversation(), 19, |m: &[Message]| {
            seen.push(m.to_vec());
            render(m)
        })
        .unwrap();
        assert_eq!(fitted.dropped_messages, 2);
        assert_eq!(fitted.tokens.len(), 19);
        assert!(fitted.is_cut() && !fitted.truncated);
        let last = seen.last().unwrap();
        assert_eq!(last[0].content, "sys");
        assert_eq!(last[1].content, "cccc");
        assert_eq!(last.last().unwrap().content, "last");

        // Only the system prompt and the last user turn fit.
        let fitted = fit_context(&conversation(), 9, render).unwrap();
        assert_eq!((fitted.dropped_messages, fitted.truncated), (4, false));
    }

    #[test]
    fn too_long_even_alone_is_cut_from_the_left() {
        let fitted = fit_context(&conversation(), 3, render).unwrap();
        assert!(fitted.truncated);
        assert_eq!(fitted.tokens.len(), 3);
        // The end of "last" is kept.
        assert_eq!(
            fitted.tokens,
            vec![u32::from('a'), u32::from('s'), u32::from('t')]
        );
        // Without a system prompt the pairs after the start still go.
        let no_system = &conversation()[1..];
        let fitted = fit_context(no_system, 5, render).unwrap();
        assert_eq!((fitted.dropped_messages, fitted.truncated), (4, false));
    }
}
