"""The teaching views' parts: drawings made into digits, explanations from live numbers, the lesson, their figures."""
