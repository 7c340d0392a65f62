"""What the user declared: recipes/*.yml (and environment.yml) into a frozen Recipe."""
