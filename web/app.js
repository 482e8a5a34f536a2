import { Upscaler } from './upscale.js';

const status = document.getElementById('status');
const backend = document.getElementById('backend');
const upscaler = new Upscaler();
upscaler.ready.then(
  (info) => {
    status.textContent = 'ready';
    status.dataset.state = 'ready';
    backend.textContent = `${info.backend}: ${info.reason}`;
    backend.dataset.backend = info.backend;
  },
  (error) => {
    status.textContent = `error: ${error.message}`;
    status.dataset.state = 'error';
  },
);
