//! The rise/fall counter of one checked server, with HAProxy's semantics: a health value from 0
//! to `rise + fall - 1`; the server is UP once it reaches `rise` from below and DOWN once it drops
//! below `rise` from above. Pure, so the state machine is tested without sockets.

use super::config::InitState;

/// A state change a check result caused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Up,
    Down,
}

#[derive(Clone, Debug)]
pub struct Health {
    health: u32,
    rise: u32,
    fall: u32,
    up: bool,
}

impl Health {
    /// HAProxy's default (`init-state up`) starts a checked server UP with its health at `rise`:
    /// traffic flows at once, and the first failed check takes it DOWN.
    pub fn new(rise: u32, fall: u32, init: Option<InitState>) -> Health {
        let (rise, fall) = (rise.max(1), fall.max(1));
        let (health, up) = match init.unwrap_or(InitState::Up) {
            InitState::Up => (rise, true),
            InitState::FullyUp => (rise + fall - 1, true),
            InitState::Down => (rise - 1, false),
            InitState::FullyDown => (0, false),
        };
        Health { health, rise, fall, up }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    fn max(&self) -> u32 {
        self.rise + self.fall - 1
    }

    /// Down and at zero health: `downinter` applies.
    pub fn fully_down(&self) -> bool {
        !self.up && self.health == 0
    }

    /// Neither fully up nor fully down: `fastinter` applies.
    pub fn transitioning(&self) -> bool {
        self.health != 0 && self.health != self.max()
    }

    /// HAProxy's `status: 2/3 UP` of health check log lines: progress towards the other state.
    pub fn status_text(&self) -> String {
        if self.up { format!("{}/{} UP", self.health + 1 - self.rise.min(self.health + 1), self.fall) } else { format!("{}/{} DOWN", self.health, self.rise) }
    }

    pub fn success(&mut self) -> Option<Transition> {
        if self.health < self.max() {
            self.health += 1;
        }
        if !self.up && self.health >= self.rise {
            self.up = true;
            self.health = self.max();
            return Some(Transition::Up);
        }
        None
    }

    pub fn failure(&mut self) -> Option<Transition> {
        if self.up && self.health <= self.rise {
            self.up = false;
            self.health = 0;
            return Some(Transition::Down);
        }
        self.health = self.health.saturating_sub(1);
        None
    }

    /// One more failure will take the server DOWN (`on-error sudden-death`).
    pub fn sudden_death(&mut self) {
        if self.up {
            self.health = self.health.min(self.rise);
        }
    }

    /// Forces DOWN at once (`on-error mark-down`).
    pub fn mark_down(&mut self) -> Option<Transition> {
        self.health = self.rise.min(self.health);
        self.failure()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_start_is_up_and_one_failure_takes_it_down() {
        let mut h = Health::new(2, 3, None);
        assert!(h.is_up());
        assert_eq!(h.failure(), Some(Transition::Down));
        assert!(h.fully_down());
    }

    #[test]
    fn down_server_needs_rise_successes_then_fall_failures() {
        let mut h = Health::new(2, 3, Some(InitState::FullyDown));
        assert!(!h.is_up());
        assert_eq!(h.success(), None);
        assert!(h.transitioning());
        assert_eq!(h.success(), Some(Transition::Up));
        assert!(!h.transitioning());
        assert_eq!(h.failure(), None);
        assert_eq!(h.failure(), None);
        assert!(h.is_up());
        assert_eq!(h.failure(), Some(Transition::Down));
    }

    #[test]
    fn success_in_between_failures_restores_health() {
        let mut h = Health::new(2, 3, Some(InitState::FullyUp));
        assert_eq!(h.failure(), None);
        assert_eq!(h.failure(), None);
        assert_eq!(h.success(), None);
        assert_eq!(h.failure(), None);
        assert_eq!(h.failure(), Some(Transition::Down));
    }

    #[test]
    fn init_down_goes_up_after_one_success() {
        let mut h = Health::new(3, 2, Some(InitState::Down));
        assert_eq!(h.success(), Some(Transition::Up));
    }

    #[test]
    fn sudden_death_and_mark_down() {
        let mut h = Health::new(2, 5, Some(InitState::FullyUp));
        h.sudden_death();
        assert!(h.is_up());
        assert_eq!(h.failure(), Some(Transition::Down));
        let mut h = Health::new(2, 5, Some(InitState::FullyUp));
        assert_eq!(h.mark_down(), Some(Transition::Down));
        assert_eq!(h.mark_down(), None);
    }

    #[test]
    fn status_text_counts_towards_the_other_state() {
        let mut h = Health::new(2, 3, Some(InitState::FullyUp));
        assert_eq!(h.status_text(), "3/3 UP");
        h.failure();
        assert_eq!(h.status_text(), "2/3 UP");
        let mut h = Health::new(2, 3, Some(InitState::FullyDown));
        h.success();
        assert_eq!(h.status_text(), "1/2 DOWN");
    }

    #[test]
    fn rise_one_fall_one() {
        let mut h = Health::new(1, 1, None);
        assert_eq!(h.failure(), Some(Transition::Down));
        assert_eq!(h.failure(), None);
        assert_eq!(h.success(), Some(Transition::Up));
        assert_eq!(h.failure(), Some(Transition::Down));
    }
}
