"""One module per view of the app; each draws from a `ui.services.state.View` and calls obd/ for its numbers."""
