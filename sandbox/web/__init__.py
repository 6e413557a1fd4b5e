"""The web chat page the emulator serves at / (index.html, app.js, style.css): plain HTML, CSS and
JavaScript with no build step and nothing fetched from elsewhere. Not Python: this file only makes the
folder package data."""
