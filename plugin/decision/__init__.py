"""Pure clinical decision support: findings, rules and the assessment engine."""
