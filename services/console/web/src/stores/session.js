// Who is logged in, shared by every page (the console keeps the session in an HttpOnly cookie;
// this holds what /console/me says about it, and the CSRF token).
import { reactive } from 'vue'
import * as api from '../api/console'

export const session = reactive({ loaded: false, user: null, csrf: '', skew: 0 })

// Now by the services' clock (deadlines and "this month" are theirs, not the browser's).
export const serverNow = () => Date.now() + session.skew

function take(user) {
  session.user = user
  session.csrf = user.csrf
  session.skew = new Date(user.now).getTime() - Date.now()
  return user
}

export async function loadSession() {
  try {
    take(await api.me())
  } catch {
    session.user = null
    session.csrf = ''
  }
  session.loaded = true
  return session.user
}

export async function signIn(login, password) {
  return take(await api.login(login, password))
}

export async function signOut() {
  try {
    await api.logout()
  } finally {
    session.user = null
    session.csrf = ''
  }
}
