// Relative asset paths, so the built app runs from any folder (the tests serve it
// from a static server on another origin than Herald's).
export default { base: './', server: { port: 5173, strictPort: true } };
