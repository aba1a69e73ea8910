// The console's own endpoints: login, session, people, units, audit log.
import { get, patch, post, put } from './http'

export const login = (login, password) => post('/console/login', { login, password })
export const logout = () => post('/console/logout')
export const me = () => get('/console/me')
export const changePassword = (oldPassword, newPassword) =>
  post('/console/password', { old_password: oldPassword, new_password: newPassword })
export const people = (query) => get('/console/people', query)
export const addPerson = (person) => post('/console/people', person)
export const changePerson = (login, change) => patch(`/console/people/${encodeURIComponent(login)}`, change)
export const units = () => get('/console/units')
export const saveUnit = (unit) => put(`/console/units/${encodeURIComponent(unit.code)}`, unit)
export const audit = (query) => get('/console/audit', query)
